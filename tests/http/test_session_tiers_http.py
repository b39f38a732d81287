"""Frontends restore a conversation's saved KV state instead of recomputing it (issue 28): with one
slot, another conversation takes the slot between two turns; the next turn still finds its whole
history cached, restored from the RAM tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from serve_helpers import Server, start_server

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def one_slot(model_home: Path) -> Iterator[Server]:
    server = start_server(model_home, "--parallel", "1", "--ctx", "2048", "--keep-alive", "-1")
    try:
        yield server
    finally:
        server.stop()


def test_responses_previous_response_id_restores_the_conversation(one_slot: Server) -> None:
    client = openai.OpenAI(base_url=f"{one_slot.url}/v1", api_key="unused", max_retries=0, timeout=120)
    first = client.responses.create(model="smollm2", max_output_tokens=16,
                                    input="My name is Ada and I keep lighthouses. Say hello in one line.")
    client.responses.create(model="smollm2", max_output_tokens=16, store=False,
                            input="Something else entirely: list three rivers of Europe.")  # takes the slot
    restored = one_slot.metric("llamarun_session_restored_total")
    second = client.responses.create(model="smollm2", max_output_tokens=8, previous_response_id=first.id,
                                     input="What is my name?")
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens
    assert one_slot.metric("llamarun_session_restored_total") > restored
