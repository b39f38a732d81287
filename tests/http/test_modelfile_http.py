"""Modelfile defaults over HTTP: `/api/create` with the official `ollama` client's fields, `/api/show`,
and the defaults applied by /api/generate, /api/chat, /v1/chat/completions and /v1/completions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest

from serve_helpers import Server, start_server

pytestmark = pytest.mark.timeout(300)
SYSTEM = "You are a very careful assistant who answers every question in exactly one short sentence."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[Server]:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("mfstore")
    ModelStore(home).create("tiny", tiny_model_path)
    srv = start_server(home, "--parallel", "2", "--ctx", "1024")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> ollama.Client:
    c = ollama.Client(host=server.url, timeout=120)
    c.create(model="careful", from_="tiny", system=SYSTEM,
             parameters={"num_predict": 3, "temperature": 0, "stop": ["<|im_end|>"]},
             messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
             license="MIT")
    return c


def test_show_reports_the_modelfile(server: Server, client: ollama.Client) -> None:
    import httpx

    raw = httpx.post(f"{server.url}/api/show", json={"model": "careful"}, timeout=60).json()
    assert raw["system"] == SYSTEM  # Ollama's ShowResponse field (the Python client does not model it)
    shown = client.show("careful")
    assert "num_predict                    3" in (shown.parameters or "")
    assert 'stop                           "<|im_end|>"' in (shown.parameters or "")
    assert shown.license == "MIT"
    assert f'SYSTEM "{SYSTEM}"' in (shown.modelfile or "") and "PARAMETER num_predict 3" in (shown.modelfile or "")
    assert 'MESSAGE user "Hi"' in (shown.modelfile or "")
    assert client.show("tiny").parameters == ""


def test_ollama_chat_and_generate_use_the_defaults(client: ollama.Client) -> None:
    base = client.chat(model="tiny", messages=[{"role": "user", "content": "hello"}],
                       options={"num_predict": 3, "temperature": 0})
    made = client.chat(model="careful", messages=[{"role": "user", "content": "hello"}])
    assert made.eval_count <= 3
    assert made.prompt_eval_count > base.prompt_eval_count + 20  # SYSTEM and the MESSAGE turns
    explicit = client.chat(model="careful", messages=[{"role": "user", "content": "hello"}],
                           options={"num_predict": 6, "ignore_eos": True, "stop": []})
    assert explicit.eval_count == 6  # the request's value wins
    own = client.chat(model="careful", messages=[{"role": "system", "content": "Hi."},
                                                 {"role": "user", "content": "hello"}])
    assert own.prompt_eval_count < made.prompt_eval_count  # its own system replaces the Modelfile's
    gen = client.generate(model="careful", prompt="hello")
    assert gen.eval_count <= 3 and gen.prompt_eval_count == made.prompt_eval_count


def test_openai_endpoints_use_the_defaults(server: Server, client: ollama.Client) -> None:
    oa = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120)
    chat = oa.chat.completions.create(model="careful", messages=[{"role": "user", "content": "hello"}])
    assert chat.usage.completion_tokens <= 3
    base = oa.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=3)
    assert chat.usage.prompt_tokens > base.usage.prompt_tokens + 20
    done = oa.completions.create(model="careful", prompt="hello", extra_body={"ignore_eos": True})
    assert done.usage.completion_tokens == 3  # num_predict, not the endpoint's 16
    wins = oa.completions.create(model="careful", prompt="hello", max_tokens=5, extra_body={"ignore_eos": True})
    assert wins.usage.completion_tokens == 5


def test_create_refuses_what_it_cannot_honour(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="unknown parameter 'temprature'") as info:
        client.create(model="bad", from_="tiny", parameters={"temprature": 0.5})
    assert info.value.status_code == 400
    with pytest.raises(ollama.ResponseError, match="Go template"):
        client.create(model="bad", from_="tiny", template="{{ .System }} {{ .Prompt }}")
    with pytest.raises(ollama.ResponseError, match="never a file"):
        client.create(model="bad", from_="/etc/passwd.gguf")
    names = [m.model for m in client.list().models]
    assert "bad:latest" not in names


def test_library_load_applies_the_defaults(server: Server, client: ollama.Client) -> None:
    import llamarun
    from llamarun.store import ModelStore

    store = ModelStore(server.home)
    with llamarun.load("careful", store=store, n_ctx=512, n_slots=1) as model:
        result = model.chat([{"role": "user", "content": "hello"}])
        assert result.completion_tokens <= 3
        base = model.chat([{"role": "system", "content": "x"}, {"role": "user", "content": "hello"}], max_tokens=1)
        assert result.prompt_tokens > base.prompt_tokens
        assert model.generate("hello", ignore_eos=True, stop=[]).completion_tokens == 3
        assert model.generate("hello", max_tokens=5, ignore_eos=True).completion_tokens == 5


def test_a_modelfile_num_ctx_is_the_model_s_own_load_setting(server: Server, client: ollama.Client) -> None:
    """PARAMETER num_ctx loads the model with that context (the server's --ctx is 1024), on both APIs,
    without the request asking for it: it is the model's setting, not a reload the request wants."""
    import openai

    client.create(model="long", from_="tiny", parameters={"num_ctx": 2048, "temperature": 0})
    reply = client.chat(model="long", messages=[{"role": "user", "content": "hello"}], options={"num_predict": 2})
    assert reply.done
    loaded = {m.model: m for m in client.ps().models}
    assert loaded["long:latest"].context_length == 2048
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    done = oai.chat.completions.create(model="long", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert done.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(ollama.ResponseError) as refused:  # a request may still not reload it here
        client.chat(model="long", messages=[{"role": "user", "content": "hello"}], options={"num_ctx": 4096})
    assert refused.value.status_code == 400 and "num_ctx" in str(refused.value)
