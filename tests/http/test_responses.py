"""The official `openai` client's Responses API (``client.responses``) against `llamarun serve`."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)

QUESTION = "What is the capital of France? Answer in one word."
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False}}


@pytest.fixture(scope="module")
def client(smol_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smol_server.url}/v1", api_key="x", max_retries=0, timeout=120)


def test_create_plain(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="smollm2", input=QUESTION, temperature=0, max_output_tokens=12)
    assert reply.status == "completed" and reply.object == "response" and reply.id.startswith("resp_")
    assert "Paris" in reply.output_text
    assert [item.type for item in reply.output] == ["message"]
    assert reply.output[0].role == "assistant" and reply.output[0].content[0].type == "output_text"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


def test_instructions_items_and_length_limit(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="tiny", instructions="Be brief.", max_output_tokens=5, extra_body={"ignore_eos": True},
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
               {"role": "user", "content": "again"}])
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage.output_tokens == 5 and reply.instructions == "Be brief."


def test_streamed_event_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="smollm2", input=QUESTION, temperature=0, max_output_tokens=12,
                                          stream=True))
    kinds = [e.type for e in events]
    deltas = [i for i, k in enumerate(kinds) if k == "response.output_text.delta"]
    assert deltas, kinds
    head = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    tail = ["response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.completed"]
    assert kinds[:4] == head and kinds[deltas[-1] + 1:] == tail
    assert set(kinds[4:deltas[-1] + 1]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "Paris" in text and events[-4].text == text
    done = events[-1].response
    assert done.status == "completed" and done.output_text == text and done.usage.output_tokens > 0
    assert len({e.item_id for e in events if hasattr(e, "item_id")}) == 1


def test_stream_helper_accumulates(client: openai.OpenAI) -> None:
    with client.responses.stream(model="smollm2", input=QUESTION, temperature=0, max_output_tokens=12) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert "Paris" in final.output_text


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    reply = client.responses.create(
        model="smollm2", input="Describe a person as JSON.", temperature=0, max_output_tokens=60,
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(reply.output_text), schema)
    loose = client.responses.create(model="tiny", input="x", max_output_tokens=40, text={"format": {"type": "json_object"}})
    assert loose.output_text.lstrip().startswith("{")


def test_required_function_tool(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="smollm2", input="What is the weather in Paris?", tools=[WEATHER_TOOL],
                                    tool_choice="required", temperature=0, max_output_tokens=60)
    calls = [item for item in reply.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER_TOOL["parameters"])
    # the result goes back as a function_call_output item; the model answers in text
    answer = client.responses.create(
        model="smollm2", previous_response_id=reply.id, tools=[WEATHER_TOOL], temperature=0, max_output_tokens=30,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"celsius": 21}'}])
    assert answer.status in ("completed", "incomplete") and answer.output


def test_streamed_function_call_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="smollm2", input="Weather in Rome?", tools=[WEATHER_TOOL],
                                          tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                                          max_output_tokens=60, stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    jsonschema.validate(json.loads(done.arguments), WEATHER_TOOL["parameters"])
    assert events[-1].response.output[-1].type == "function_call"


def test_two_turns_reuse_the_cache(client: openai.OpenAI) -> None:
    first = client.responses.create(model="smollm2", input="My name is Ada. Say hello.", temperature=0,
                                    max_output_tokens=16)
    second = client.responses.create(model="smollm2", input="What is my name?", previous_response_id=first.id,
                                     temperature=0, max_output_tokens=16)
    assert second.previous_response_id == first.id
    # the second prompt holds the first turn and its answer, and reuses their cache
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens


def test_get_delete_and_store_false(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="tiny", input="hi", max_output_tokens=3)
    again = client.responses.retrieve(reply.id)
    assert again.id == reply.id and again.output_text == reply.output_text
    client.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(reply.id)
    unstored = client.responses.create(model="tiny", input="hi", max_output_tokens=3, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_cancel_a_streamed_response(client: openai.OpenAI) -> None:
    stream = client.responses.create(model="tiny", input="hi", max_output_tokens=100_000, stream=True,
                                     extra_body={"ignore_eos": True})
    events = iter(stream)
    created = next(events)
    assert created.type == "response.created"
    cancelled = client.responses.cancel(created.response.id)
    assert cancelled.status == "cancelled"
    rest = list(events)
    assert rest[-1].type == "response.failed" and rest[-1].response.status == "cancelled"
    assert client.responses.retrieve(created.response.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="already ended"):
        client.responses.cancel(created.response.id)


# -- hostile inputs: 4xx naming the field, and the server keeps serving ---------------------------

HOSTILE = [
    ({"input": [{"type": "input_image", "image_url": "http://x/y.png"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": ["not an object"]}, "input"),
    ({"input": [{"role": "user", "content": "x"}] * 10_000}, "input"),
    ({"input": "hi", "previous_response_id": "resp_doesnotexist"}, "previous_response_id"),
    ({"input": "hi", "previous_response_id": "../../etc/passwd"}, "previous_response_id"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "computer_use_preview", "display_width": 1, "display_height": 1,
                                "environment": "linux"}]}, "tools[0].type"),
    ({"input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"input": "hi", "text": {"verbosity": "high"}}, "text.verbosity"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": "hi", "include": ["file_search_call.results"]}, "include"),
    ({"input": "hi", "truncation": "auto"}, "truncation"),
    ({"input": "hi", "reasoning": {"effort": "enormous"}}, "reasoning.effort"),
    ({"input": "hi", "max_output_tokens": -1}, "max_output_tokens"),
    ({}, "input"),
]


@pytest.mark.parametrize(("fields", "param"), HOSTILE, ids=[p for _, p in HOSTILE])
def test_hostile_requests_name_the_field(smol_server: Server, fields: dict, param: str) -> None:
    with smol_server.client() as http:
        reply = http.post("/v1/responses", json={"model": "tiny", "max_output_tokens": 4, **fields})
        assert 400 <= reply.status_code < 500, reply.text
        error = reply.json()["error"]
        assert error["param"] == param or param in error["message"], error
        assert http.get("/health").status_code == 200


def test_unknown_ids(client: openai.OpenAI, smol_server: Server) -> None:
    for call in (client.responses.retrieve, client.responses.cancel, client.responses.delete):
        with pytest.raises(openai.NotFoundError):
            call("resp_nope")
    with smol_server.client() as http:
        assert http.get("/v1/responses/" + "x" * 5000).status_code == 404


def test_unknown_fields_are_named_in_a_header(smol_server: Server) -> None:
    with smol_server.client() as http:
        reply = http.post("/v1/responses", json={"model": "tiny", "input": "hi", "max_output_tokens": 2,
                                                 "frobnicate": 1, "zeta\r\nX-Evil: 1": 2})
        assert reply.status_code == 200
        assert reply.headers["x-llamarun-ignored-fields"] == "frobnicate, ?"
        assert "x-evil" not in reply.headers
        plain = http.post("/v1/responses", json={"model": "tiny", "input": "hi", "max_output_tokens": 2})
        assert "x-llamarun-ignored-fields" not in plain.headers

