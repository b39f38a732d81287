"""The official `ollama` client against `llamarun serve`."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from serve_helpers import Server, start_server
from waiting import wait_until

pytestmark = pytest.mark.timeout(300)

QUESTION = "What is the capital of France? Answer in one word."
GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def client(smol_server: Server) -> ollama.Client:
    return ollama.Client(host=smol_server.url, timeout=120)


def test_generate_and_chat_answer(client: ollama.Client) -> None:
    reply = client.generate(model="smollm2", prompt=QUESTION, options=GREEDY)
    assert "Paris" in reply.response
    assert reply.done and reply.done_reason == "stop"
    assert reply.eval_count and reply.prompt_eval_count and reply.total_duration

    chat = client.chat(model="smollm2", messages=[{"role": "user", "content": QUESTION}], options=GREEDY)
    assert "Paris" in chat.message.content
    assert chat.message.role == "assistant"


def test_streaming_generate_and_chat(client: ollama.Client) -> None:
    parts = list(client.generate(model="smollm2", prompt=QUESTION, options=GREEDY, stream=True))
    assert len(parts) > 2 and parts[-1].done and not any(p.done for p in parts[:-1])
    assert "Paris" in "".join(p.response for p in parts)
    assert parts[-1].eval_count == len([p for p in parts[:-1] if p.response])

    parts = list(client.chat(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                             options=GREEDY, stream=True))
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert "Paris" in "".join(p.message.content for p in parts)


def test_length_limit_and_raw(client: ollama.Client) -> None:
    reply = client.generate(model="tiny", prompt="hello", raw=True,
                            options={"num_predict": 5, "ignore_eos": True, "seed": 1})
    assert reply.done_reason == "length" and reply.eval_count == 5


def test_json_format(client: ollama.Client) -> None:
    import json

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = client.chat(model="smollm2", messages=[{"role": "user", "content": "Name a city as JSON."}],
                        format=schema, options={"temperature": 0, "num_predict": 40})
    assert isinstance(json.loads(reply.message.content)["city"], str)


def test_list_show_ps(client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"smollm2:latest", "tiny:latest"} <= names
    smol = next(m for m in client.list().models if m.model == "smollm2:latest")
    assert smol.details.quantization_level == "Q4_1" and smol.size > 90_000_000

    shown = client.show("smollm2")
    assert shown.details.family == "llama"
    assert "im_start" in (shown.template or "")
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "llama"

    client.generate(model="smollm2", prompt="hi", options={"num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert "smollm2:latest" in running and running["smollm2:latest"].size > 0


def test_load_and_unload_with_empty_prompt(client: ollama.Client) -> None:
    loaded = client.generate(model="tiny", prompt="")
    assert loaded.done_reason == "load"
    assert "tiny:latest" in {m.model for m in client.ps().models}
    unloaded = client.generate(model="tiny", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "tiny:latest" not in {m.model for m in client.ps().models}


def test_keep_alive_zero_unloads_after_the_response(client: ollama.Client, smol_server: Server) -> None:
    client.generate(model="tiny", prompt="x", raw=True, keep_alive=0, options={"num_predict": 2})
    wait_until(lambda: "tiny:latest" not in {m.model for m in client.ps().models}, interval=0.1)
    assert "tiny:latest" not in {m.model for m in client.ps().models}


def test_embed(client: ollama.Client) -> None:
    import numpy as np

    result = client.embed(model="smollm2", input=["The cat sat on the mat.", "A cat is sitting on a mat.",
                                                  "Quarterly revenue grew by five percent."])
    vectors = np.array(result.embeddings)
    assert vectors.shape == (3, 576)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    legacy = client.embeddings(model="smollm2", prompt="hello")
    assert len(legacy.embedding) == 576


def test_copy_and_delete(client: ollama.Client) -> None:
    client.copy("tiny", "tiny-copy")
    assert "tiny-copy:latest" in {m.model for m in client.list().models}
    client.generate(model="tiny-copy", prompt="a", raw=True, options={"num_predict": 1})
    client.delete("tiny-copy")
    assert "tiny-copy:latest" not in {m.model for m in client.list().models}
    assert "tiny-copy:latest" not in {m.model for m in client.ps().models}
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("tiny-copy")
    assert err.value.status_code == 404


def test_create_from_a_stored_model(client: ollama.Client) -> None:
    done = client.create(model="tiny-made", from_="tiny")
    assert done.status == "success"
    assert "tiny-made:latest" in {m.model for m in client.list().models}
    client.create(model="tiny-sys", from_="tiny", system="You are terse.")  # a Modelfile default now
    assert 'SYSTEM "You are terse."' in (client.show("tiny-sys").modelfile or "")
    client.delete("tiny-made")
    client.delete("tiny-sys")


def test_create_quantizes(client: ollama.Client) -> None:
    """`quantize` makes a new model through llama.cpp; as in Ollama, only from an unquantized one."""
    done = client.create(model="tiny-q", from_="tiny", quantize="q4_K_M", system="Be brief.")
    assert done.status == "success"
    shown = client.show("tiny-q")
    assert shown.details.quantization_level == "Q4_K_M"
    assert 'SYSTEM "Be brief."' in (shown.modelfile or "")
    assert client.generate(model="tiny-q", prompt="a", raw=True, options={"num_predict": 2}).done
    with pytest.raises(ollama.ResponseError) as err:
        client.create(model="tiny-qq", from_="tiny-q", quantize="q4_0")
    assert err.value.status_code == 400 and "already quantized" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.create(model="tiny-qq", from_="tiny", quantize="q9_9")
    assert err.value.status_code == 400 and "quantization type" in err.value.error
    assert "tiny-qq:latest" not in {m.model for m in client.list().models}
    client.delete("tiny-q")


@pytest.fixture(scope="module")
def reloading_client(model_home: Path) -> Iterator[ollama.Client]:
    """A server whose operator lets requests reload models (serve --allow-request-reload)."""
    server = start_server(model_home, "--parallel", "4", "--ctx", "2048", "--keep-alive", "-1",
                          "--allow-request-reload")
    try:
        yield ollama.Client(host=server.url, timeout=120)
    finally:
        server.stop()


def test_num_ctx_reloads_the_model(reloading_client: ollama.Client) -> None:
    client = reloading_client
    client.generate(model="tiny", prompt="a", raw=True, options={"num_predict": 1, "num_ctx": 640})
    assert {m.model: m.context_length for m in client.ps().models}["tiny:latest"] == 640
    client.generate(model="tiny", prompt="a", raw=True, options={"num_predict": 1})  # no preference: reused
    assert {m.model: m.context_length for m in client.ps().models}["tiny:latest"] == 640
    client.generate(model="tiny", prompt="a", raw=True, options={"num_predict": 1, "num_ctx": 2048})
    assert {m.model: m.context_length for m in client.ps().models}["tiny:latest"] == 2048


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("files")
    shutil.copy(tiny_model_path, folder / "pulled-tiny.gguf")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_pull_streams_progress(client: ollama.Client, file_server: str) -> None:
    events = list(client.pull(f"{file_server}/pulled-tiny.gguf", stream=True))
    assert events[-1].status == "success"
    assert any(e.total and e.completed for e in events)
    assert "pulled-tiny:latest" in {m.model for m in client.list().models}
    again = client.pull(f"{file_server}/pulled-tiny.gguf")
    assert again.status == "success"


def test_errors(client: ollama.Client, smol_server: Server) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="no-such-model", prompt="hi")
    assert err.value.status_code == 404 and "not found" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="smollm2", prompt="hi", options={"top_p": 2})
    assert err.value.status_code == 400 and "top_p" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("../../etc/passwd")
    assert err.value.status_code == 400
    r = httpx.post(f"{smol_server.url}/api/generate",
                   json={"model": "smollm2", "prompt": "hi", "template": "{{ .Prompt }}"})
    assert r.status_code == 400 and "template" in r.json()["error"]
    r = httpx.post(f"{smol_server.url}/api/generate", json={"model": "smollm2", "prompt": "hi", "think": True})
    assert r.status_code == 400 and "thinking" in r.json()["error"]


def test_tools_and_tool_results_round_trip(client: ollama.Client) -> None:
    """Tools are accepted and any call comes back structured; a tool result flows into the next turn.

    Ollama's API has no tool_choice (it is always "auto"), so the call itself is forced through the
    OpenAI API's test; here the history carries the call a client would have received."""
    import jsonschema

    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat(model="smollm2", messages=messages, tools=tools, options={"temperature": 0, "num_predict": 80})
    for call in first.message.tool_calls or []:
        assert call.function.name == "get_weather"
        jsonschema.validate(dict(call.function.arguments), tools[0]["function"]["parameters"])
    messages.append({"role": "assistant", "content": "",
                     "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]})
    messages.append({"role": "tool", "tool_name": "get_weather", "content": '{"temperature_c": 21, "sky": "sunny"}'})
    final = client.chat(model="smollm2", messages=messages, options={"temperature": 0, "num_predict": 60})
    assert final.message.content.strip()  # the answer after the tool result, in words
