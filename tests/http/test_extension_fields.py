"""llama-server's ``grammar`` / ``json_schema`` honoured on /v1/completions and /v1/chat/completions,
with response_format's limits; unknown top-level fields named in ``X-Llamarun-Ignored-Fields``."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import openai
import pytest
from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)

YES_NO = 'root ::= "yes" | "no"'
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
          "required": ["n", "ok"], "additionalProperties": False}
DEEP_GRAMMAR = "root ::= " + "(" * 60_000 + '"a"' + ")" * 60_000


@pytest.fixture(scope="module")
def client(smol_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smol_server.url}/v1", api_key="x", max_retries=0, timeout=120)


def _chat(client: openai.OpenAI, model: str, **extra: object) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Is it? Reply."}],
                                           max_tokens=40, seed=1, extra_body=extra)
    return reply.choices[0].message.content


def _complete(client: openai.OpenAI, model: str, **extra: object) -> str:
    return client.completions.create(model=model, prompt="Answer:", max_tokens=40, seed=1,
                                     extra_body=extra).choices[0].text


@pytest.mark.parametrize("call", [_chat, _complete], ids=["chat", "completions"])
def test_grammar_constrains(client: openai.OpenAI, call: object) -> None:
    for seed_model in ("tiny", "smollm2"):
        assert call(client, seed_model, grammar=YES_NO) in ("yes", "no")  # type: ignore[operator]


@pytest.mark.parametrize("call", [_chat, _complete], ids=["chat", "completions"])
def test_json_schema_constrains(client: openai.OpenAI, call: object) -> None:
    text = call(client, "tiny", json_schema=SCHEMA, max_tokens=80)  # type: ignore[operator]
    jsonschema.validate(json.loads(text), SCHEMA)


def test_tiny_is_unconstrained_without_them(client: openai.OpenAI) -> None:
    """The baseline: the random-weight model does not say yes/no by itself."""
    assert _complete(client, "tiny") not in ("yes", "no")


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_deep_grammar_is_a_fast_400(smol_server: Server, path: str) -> None:
    body = {"model": "tiny", "max_tokens": 4, "grammar": DEEP_GRAMMAR,
            "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
    with smol_server.client() as http:
        started = time.monotonic()
        reply = http.post(path, json=body)
        elapsed = time.monotonic() - started
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "grammar", reply.text
        assert elapsed < 1.0, elapsed
        assert http.post(path, json={**body, "grammar": YES_NO}).status_code == 200  # still serving


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_bad_constraints_are_400(smol_server: Server, path: str) -> None:
    base = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
    deep_schema: dict = {"type": "string"}
    for _ in range(200):
        deep_schema = {"type": "array", "items": deep_schema}
    cases = [({"grammar": "root ::= undefined_rule"}, "grammar"), ({"json_schema": deep_schema}, None),
             ({"grammar": YES_NO, "json_schema": SCHEMA}, "grammar"),
             ({"json_schema": SCHEMA, "response_format": {"type": "json_object"}}, "json_schema")]
    with smol_server.client() as http:
        for fields, param in cases:
            reply = http.post(path, json={**base, **fields})
            assert reply.status_code == 400, (fields, reply.text)
            assert param is None or reply.json()["error"]["param"] == param, reply.text


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}),
    ("/v1/completions", {"model": "tiny", "max_tokens": 2, "prompt": "x"}),
    ("/v1/embeddings", {"model": "tiny", "input": "x"}),
    ("/api/chat", {"model": "tiny", "stream": False, "options": {"num_predict": 2},
                   "messages": [{"role": "user", "content": "x"}]}),
    ("/api/generate", {"model": "tiny", "stream": False, "prompt": "x", "options": {"num_predict": 2}}),
    ("/api/show", {"model": "tiny"}),
])
def test_unknown_fields_header(smol_server: Server, path: str, body: dict) -> None:
    with smol_server.client() as http:
        reply = http.post(path, json={**body, "brand_new_field": True, "another": 1})
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-llamarun-ignored-fields"] == "another, brand_new_field"
        assert "x-llamarun-ignored-fields" not in http.post(path, json=body).headers


def test_legacy_name_is_not_reported(smol_server: Server) -> None:
    with smol_server.client() as http:
        reply = http.post("/api/show", json={"name": "tiny"})
        assert reply.status_code == 200 and "x-llamarun-ignored-fields" not in reply.headers


def test_known_unhonoured_chat_fields_are_400(smol_server: Server) -> None:
    base = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
    with smol_server.client() as http:
        for field, value in (("audio", {"voice": "alloy", "format": "wav"}), ("modalities", ["text", "audio"]),
                             ("prediction", {"type": "content", "content": "x"}), ("store", True),
                             ("web_search_options", {})):
            reply = http.post("/v1/chat/completions", json={**base, field: value})
            assert reply.status_code == 400 and reply.json()["error"]["param"] == field, reply.text
        assert http.post("/v1/chat/completions", json={**base, "modalities": ["text"]}).status_code == 200
        assert re.search("reasoning", http.post("/v1/chat/completions", json={
            **base, "reasoning_effort": "galactic"}).text)
