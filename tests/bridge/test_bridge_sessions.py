"""The bridge's chat restores a conversation's saved KV state instead of computing it again (issue
28): with one slot, another conversation takes the slot between two turns of the first; the
next turn of the first finds its whole history restored from the RAM tier."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_helpers import Bridge, short_dir, start_bridge

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def one_slot_bridge(bridge_home: Path) -> Iterator[Bridge]:
    started = start_bridge(bridge_home, "--parallel", "1", "--ctx", "2048", "--keep-alive", "-1",
                           env={"XDG_RUNTIME_DIR": str(short_dir())})
    try:
        yield started
    finally:
        assert started.stop() == 0, "".join(started.stderr)[-2000:]


def test_chat_restores_the_conversation_after_another_took_the_slot(one_slot_bridge: Bridge) -> None:
    with one_slot_bridge.client() as ada, one_slot_bridge.client() as other:
        for c in (ada, other):
            c.ok("LOAD smollm2")
            c.ok("SET temperature 0")
            c.ok("SET max_tokens 16")
        history = [{"role": "user", "content": "My name is Ada and I keep lighthouses. Say hello in one line."}]
        first = ada.ok("CHAT " + json.dumps(history))
        other.ok("CHAT Something else entirely: list three rivers of Europe.")  # takes the only slot
        before = ada.ok("STATUS")["engine"]
        history += [first["message"], {"role": "user", "content": "What is my name?"}]
        second = ada.ok("CHAT " + json.dumps(history))
        after = ada.ok("STATUS")["engine"]
    assert after["sessions_restored"] == before["sessions_restored"] + 1
    assert second["cached_tokens"] >= first["prompt_tokens"]
