"""A request's timeout ends it with the partial text and a deadline finish reason, on every API and
in every form (options.timeout, top-level timeout, X-Request-Timeout; whole and streamed), read with
the official clients.  Ollama says ``done_reason: "deadline"``; OpenAI says ``finish_reason:
"length"`` (one of its declared reasons, as llama-server ends its time limit)."""

from __future__ import annotations

import httpx
import ollama
import openai
import pytest

from serve_helpers import Server

LONG = 1900  # far more tokens than the tiny model makes in the timeout below
TIMEOUT = 0.3
RAW = {"model": "tiny", "prompt": "x", "raw": True}


def _partial(text: str, count: int) -> None:
    assert 0 < count < LONG and text, (count, text)


@pytest.mark.parametrize("how", ["options", "top-level", "header"])
def test_ollama_generate_deadline_returns_partial_text(smol_server: Server, how: str) -> None:
    options = {"num_predict": LONG, "ignore_eos": True}
    if how == "options":
        options["timeout"] = TIMEOUT
    headers = {"X-Request-Timeout": str(TIMEOUT)} if how == "header" else None
    if how == "top-level":  # the official client has no such argument: the wire format does
        r = httpx.post(f"{smol_server.url}/api/generate", timeout=60,
                       json={**RAW, "stream": False, "options": options, "timeout": TIMEOUT})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["done_reason"] == "deadline"
        _partial(body["response"], body["eval_count"])
        return
    client = ollama.Client(host=smol_server.url, timeout=60, headers=headers)
    whole = client.generate(**RAW, options=options)
    assert whole.done_reason == "deadline"
    _partial(whole.response, whole.eval_count)
    parts = list(client.generate(**RAW, options=options, stream=True))
    assert parts[-1].done and parts[-1].done_reason == "deadline"
    _partial("".join(p.response for p in parts), parts[-1].eval_count)


def test_ollama_chat_top_level_timeout(smol_server: Server) -> None:
    r = httpx.post(f"{smol_server.url}/api/chat", timeout=60, json={
        "model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": False, "timeout": TIMEOUT,
        "options": {"num_predict": LONG, "ignore_eos": True}})
    assert r.status_code == 200, r.text
    assert r.json()["done_reason"] == "deadline" and 0 < r.json()["eval_count"] < LONG
    client = ollama.Client(host=smol_server.url, timeout=60)
    parts = list(client.chat(model="tiny", messages=[{"role": "user", "content": "x"}], stream=True,
                             options={"num_predict": LONG, "ignore_eos": True, "timeout": TIMEOUT}))
    assert parts[-1].done_reason == "deadline" and 0 < parts[-1].eval_count < LONG


@pytest.mark.parametrize("how", ["body", "header"])
def test_openai_deadline_returns_partial_text(smol_server: Server, how: str) -> None:
    client = openai.OpenAI(base_url=f"{smol_server.url}/v1", api_key="unused", timeout=60)
    extra_body = {"ignore_eos": True, **({"timeout": TIMEOUT} if how == "body" else {})}
    extra_headers = {"X-Request-Timeout": str(TIMEOUT)} if how == "header" else None
    kw = {"model": "tiny", "max_tokens": LONG, "extra_body": extra_body, "extra_headers": extra_headers}
    done = client.completions.create(prompt="x", **kw)
    assert done.choices[0].finish_reason == "length"
    _partial(done.choices[0].text, done.usage.completion_tokens)
    chat = client.chat.completions.create(messages=[{"role": "user", "content": "x"}], **kw)
    assert chat.choices[0].finish_reason == "length"
    _partial(chat.choices[0].message.content, chat.usage.completion_tokens)
    chunks = list(client.chat.completions.create(messages=[{"role": "user", "content": "x"}], stream=True, **kw))
    assert chunks[-1].choices[0].finish_reason == "length"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text and len(text) < LONG * 20
