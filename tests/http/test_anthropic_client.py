"""The official `anthropic` client against `llamarun serve`: Messages whole and streamed, tools,
count_tokens, errors in Anthropic's shape, hostile inputs (4xx naming the field, server alive)."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import jsonschema
import pytest
from serve_helpers import Server, start_server

pytestmark = pytest.mark.timeout(300)

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
GREEDY = {"temperature": 0}  # not an argument of the 2.x client any more; sent as older clients do
WEATHER = {"name": "get_weather", "description": "Current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def client(smol_server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=smol_server.url, api_key="x", max_retries=0, timeout=120)


def test_messages_create(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model="smollm2", max_tokens=12, messages=QUESTION, extra_body=GREEDY,
                                   system="You are a geography teacher.")
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert [b.type for b in reply.content] == ["text"]
    assert "Paris" in reply.content[0].text
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


def test_max_tokens_and_stop_sequences(client: anthropic.Anthropic) -> None:
    short = client.messages.create(model="smollm2", max_tokens=2, messages=QUESTION, extra_body=GREEDY)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 2
    counting = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    stopped = client.messages.create(model="smollm2", max_tokens=40, messages=counting, stop_sequences=["4"],
                                     extra_body=GREEDY)
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "4", stopped
    assert "4" not in stopped.content[0].text


def test_streaming_event_order(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="smollm2", max_tokens=12, messages=QUESTION, extra_body=GREEDY) as stream:
        events = [e.type for e in stream if e.type in ("message_start", "content_block_start", "content_block_delta",
                                                         "content_block_stop", "message_delta", "message_stop")]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[1] == "content_block_start"
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[2:-3]) == {"content_block_delta"}
    assert "Paris" in final.content[0].text and final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_raw_stream_has_ping_and_named_events(smol_server: Server) -> None:
    body = {"model": "smollm2", "max_tokens": 4, "messages": QUESTION, "stream": True, "temperature": 0}
    with httpx.stream("POST", f"{smol_server.url}/v1/messages", json=body, timeout=120) as r:
        lines = [line for line in r.iter_lines() if line.startswith("event: ")]
    names = [line.removeprefix("event: ") for line in lines]
    assert names[:2] == ["message_start", "ping"] and names[-1] == "message_stop"


def test_tool_use_then_tool_result(client: anthropic.Anthropic) -> None:
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model="smollm2", max_tokens=80, messages=messages, tools=[WEATHER],
                                   tool_choice={"type": "any"}, extra_body=GREEDY)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    jsonschema.validate(call.input, WEATHER["input_schema"])
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": '{"temperature_c": 21, "sky": "sunny"}'}]}]
    final = client.messages.create(model="smollm2", max_tokens=40, messages=messages, tools=[WEATHER],
                                   tool_choice={"type": "none"}, extra_body=GREEDY)
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in final.content] == ["text"] and final.content[0].text


def test_streamed_tool_use_has_input_json_delta(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="smollm2", max_tokens=80, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=[{"role": "user", "content": "Weather in Rome?"}], extra_body=GREEDY) as s:
        deltas = [e.delta.type for e in s if e.type == "content_block_delta"]
        final = s.get_final_message()
    assert "input_json_delta" in deltas
    call = final.content[-1]
    assert call.type == "tool_use" and final.stop_reason == "tool_use"
    jsonschema.validate(call.input, WEATHER["input_schema"])


def test_count_tokens(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(model="smollm2", messages=QUESTION)
    longer = client.messages.count_tokens(model="smollm2", messages=QUESTION, system="Be brief. " * 10)
    assert 0 < short.input_tokens < longer.input_tokens
    reply = client.messages.create(model="smollm2", max_tokens=1, messages=QUESTION, extra_body=GREEDY)
    assert reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0) == short.input_tokens


def test_output_config_json_schema(client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    reply = client.messages.create(model="smollm2", max_tokens=40, messages=QUESTION, extra_body=GREEDY,
                                   output_config={"format": {"type": "json_schema", "schema": schema}})
    import json

    jsonschema.validate(json.loads(reply.content[0].text), schema)


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "bogus"}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}]}]},
     "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 10_000}]}, "content"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0.type"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"mcp_servers": [{"type": "url", "url": "http://x", "name": "x"}]}, "mcp_servers"),
])
def test_hostile_requests_are_anthropic_400s(smol_server: Server, body: dict, field: str) -> None:
    full = {"model": "smollm2", "max_tokens": 8, "messages": QUESTION, **body}
    r = httpx.post(f"{smol_server.url}/v1/messages", json=full, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert field in error["error"]["message"], error
    assert httpx.get(f"{smol_server.url}/health", timeout=30).status_code == 200


def test_errors_through_the_client(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="no-such-model", max_tokens=4, messages=QUESTION)
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="smollm2", max_tokens=4, messages=[{"role": "assistant", "content": "hi"}])


def test_x_api_key_is_the_key(model_home: Path) -> None:
    server = start_server(model_home, "--ctx", "512", env={"LLAMARUN_API_KEY": "sekret-key-1234"})
    try:
        ok = anthropic.Anthropic(base_url=server.url, api_key="sekret-key-1234", max_retries=0)
        assert ok.messages.count_tokens(model="tiny", messages=QUESTION).input_tokens > 0
        with pytest.raises(anthropic.AuthenticationError) as caught:
            anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0).messages.count_tokens(
                model="tiny", messages=QUESTION)
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    finally:
        server.stop()
