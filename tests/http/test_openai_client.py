"""The official `openai` client against `llamarun serve`."""

from __future__ import annotations

import json

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def client(smol_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smol_server.url}/v1", api_key="x", max_retries=0, timeout=120)


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=0, max_tokens=12)
    choice = reply.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming_with_usage_and_cached_tokens(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.prompt_tokens_details.cached_tokens > 0  # the same prompt ran just before


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="tiny", prompt="hello", max_tokens=6, extra_body={"ignore_eos": True},
                                      seed=3)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 6
    again = client.completions.create(model="tiny", prompt="hello", max_tokens=6,
                                      extra_body={"ignore_eos": True}, seed=3)
    assert again.choices[0].text == reply.choices[0].text  # same seed, same text

    parts = list(client.completions.create(model="tiny", prompt="hello", max_tokens=6, stream=True,
                                           extra_body={"ignore_eos": True}, seed=3))
    assert "".join(p.choices[0].text for p in parts if p.choices) == reply.choices[0].text


def test_n_choices_and_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], n=3,
                                           max_tokens=4, logprobs=True, top_logprobs=2, seed=5,
                                           extra_body={"ignore_eos": True})
    assert [c.index for c in reply.choices] == [0, 1, 2]
    for choice in reply.choices:
        assert len(choice.logprobs.content) == 4
        assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in choice.logprobs.content)
    assert reply.usage.completion_tokens == 12


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Describe a person as JSON."}], temperature=0,
        max_tokens=60, response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_tools_required(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    reply = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=tools,
        tool_choice="required", temperature=0, max_tokens=80)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), tools[0]["function"]["parameters"])

    stream = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=tools,
        tool_choice="required", temperature=0, max_tokens=80, stream=True)
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smollm2:latest", "tiny:latest"} <= ids
    assert client.models.retrieve("smollm2").id == "smollm2:latest"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="smollm2", input=["The cat sat on the mat.", "A cat sits on a mat."])
    vectors = np.array([d.embedding for d in result.data])  # the client asks for base64 and decodes it
    assert vectors.shape == (2, 576)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    floats = client.embeddings.create(model="smollm2", input="The cat sat on the mat.", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-5)
    assert result.usage.prompt_tokens > 0


def test_errors_in_openai_shape(client: openai.OpenAI, smol_server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=QUESTION)
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=5)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2", messages=QUESTION, n=10**9)
    assert err.value.body["param"] == "n"
    long = [{"role": "user", "content": "word " * 1000}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=long, max_tokens=5)
    assert "2048" in err.value.body["message"] and "tokens" in err.value.body["message"]
    reply = client.chat.completions.create(model="tiny", messages=long, max_tokens=2,
                                           extra_body={"truncate": True})
    assert reply.usage.prompt_tokens < 2048
    r = httpx.post(f"{smol_server.url}/v1/chat/completions", content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_tool_round_trip(client: openai.OpenAI) -> None:
    """call -> tool result -> final answer, through the official client."""
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="smollm2", messages=messages, tools=tools,
                                           tool_choice="required", temperature=0, max_tokens=80)
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21, "sky": "sunny"}'})
    final = client.chat.completions.create(model="smollm2", messages=messages, tools=tools, tool_choice="none",
                                           temperature=0, max_tokens=60)
    answer = final.choices[0].message
    assert not answer.tool_calls
    assert answer.content and answer.content.strip()
