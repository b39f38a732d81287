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


def test_ollama_context_round_trip_restores_the_conversation(one_slot: Server) -> None:
    import ollama

    client = ollama.Client(host=one_slot.url, timeout=120)
    first = client.generate(model="smollm2", prompt="My name is Ada and I keep lighthouses. Say hello in one line.",
                            options={"num_predict": 16, "temperature": 0})
    client.generate(model="smollm2", prompt="Something else entirely: list three rivers of Europe.",
                    options={"num_predict": 16})  # takes the only slot
    restored = one_slot.metric("llamarun_session_restored_total")
    restored_tokens = one_slot.metric("llamarun_session_restored_tokens_total")
    client.generate(model="smollm2", prompt="What is my name?", context=first.context,
                    options={"num_predict": 8, "temperature": 0})
    assert one_slot.metric("llamarun_session_restored_total") == restored + 1
    # the whole first turn came back from the tier (all but its last token, which was never decoded)
    assert one_slot.metric("llamarun_session_restored_tokens_total") - restored_tokens >= len(first.context) - 1


def test_serve_session_flags_turn_the_tiers_off(model_home: Path) -> None:
    server = start_server(model_home, "--parallel", "1", "--ctx", "2048", "--session-ram", "0", "--session-disk", "0")
    try:
        import ollama

        client = ollama.Client(host=server.url, timeout=120)
        first = client.generate(model="smollm2", prompt="My name is Ada and I keep lighthouses. Say hello.",
                                options={"num_predict": 8, "temperature": 0})
        client.generate(model="smollm2", prompt="Something else entirely: list three rivers of Europe.",
                        options={"num_predict": 8})
        client.generate(model="smollm2", prompt="What is my name?", context=first.context, options={"num_predict": 4})
        assert server.metric("llamarun_session_saved_total") == 0
        assert server.metric("llamarun_session_restored_total") == 0
    finally:
        assert server.stop() == 0
