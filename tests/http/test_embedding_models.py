"""A model whose GGUF declares a pooling type embeds (pooled by llama.cpp) and refuses to generate.

Runs the app in-process: uvicorn on 127.0.0.1 port 0 in a thread (the library way to serve).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import numpy as np
import pytest

from llamarun.http import DrainingServer, HttpConfig, ServerState, create_app, uvicorn_config
from llamarun.runtime import ManagerConfig
from llamarun.store import ModelStore
from tinymodel import CHATML, write_tiny_gguf

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[str]:
    home = tmp_path_factory.mktemp("embed-store")
    store = ModelStore(home)
    pooled = write_tiny_gguf(home / "pooled.gguf", pooling=gguf.PoolingType.MEAN)
    # rerankers such as Qwen3-Reranker carry a chat template that mentions tools
    ranker = write_tiny_gguf(home / "ranker.gguf", pooling=gguf.PoolingType.RANK,
                             chat_template=CHATML + "{% if tools %}{% endif %}")
    store.create("pooled", pooled)
    store.create("ranker", ranker)
    store.create("tiny", tiny_model_path)
    config = HttpConfig(port=0)
    state = ServerState()
    app = create_app(config, store=store, state=state,
                     manager_config=ManagerConfig(n_threads=1, n_ctx=256, n_slots=1, keep_alive=-1))
    server = DrainingServer(uvicorn_config(app, config), state, shutdown_timeout=5)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(60) and server.port
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_embedding_model_embeds(server_url: str) -> None:
    r = httpx.post(f"{server_url}/api/embed", json={"model": "pooled", "input": ["one", "two words"]}, timeout=60)
    assert r.status_code == 200, r.text
    vectors = np.array(r.json()["embeddings"])
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    r = httpx.post(f"{server_url}/v1/embeddings", json={"model": "pooled", "input": "one", "dimensions": 16})
    assert len(r.json()["data"][0]["embedding"]) == 16


def test_embedding_model_refuses_generation(server_url: str) -> None:
    r = httpx.post(f"{server_url}/api/generate", json={"model": "pooled", "prompt": "hi"}, timeout=60)
    assert r.status_code == 400 and "embedding model" in r.json()["error"]
    r = httpx.post(f"{server_url}/v1/chat/completions", timeout=60,
                   json={"model": "pooled", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    shown = httpx.post(f"{server_url}/api/show", json={"model": "pooled"}).json()
    assert shown["capabilities"] == ["embedding"]
    assert "completion" in httpx.post(f"{server_url}/api/show", json={"model": "tiny"}).json()["capabilities"]


def test_empty_and_oversized_inputs(server_url: str) -> None:
    r = httpx.post(f"{server_url}/v1/embeddings", json={"model": "tiny", "input": ""})
    assert r.status_code == 400
    long = "word " * 400  # beyond the 256-token context
    r = httpx.post(f"{server_url}/api/embed", json={"model": "tiny", "input": long, "truncate": False}, timeout=60)
    assert r.status_code == 400 and "256" in r.json()["error"]
    r = httpx.post(f"{server_url}/api/embed", json={"model": "tiny", "input": long}, timeout=60)
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 256


def test_a_reranker_cannot_embed_and_says_so(server_url: str) -> None:
    """Rank pooling (bge-reranker and the like) yields one score per text, not a vector: a clear 400
    on both APIs (never n_embd values read past llama.cpp's buffer), and the server keeps serving."""
    r = httpx.post(f"{server_url}/api/embed", json={"model": "ranker", "input": "one"}, timeout=60)
    assert r.status_code == 400 and "reranker" in r.json()["error"], r.text
    r = httpx.post(f"{server_url}/v1/embeddings", json={"model": "ranker", "input": "one"}, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "model" and "cannot produce embeddings" in error["message"]
    r = httpx.post(f"{server_url}/api/generate", json={"model": "ranker", "prompt": "hi"}, timeout=60)
    assert r.status_code == 400
    assert httpx.post(f"{server_url}/api/show", json={"model": "ranker"}).json()["capabilities"] == []
    r = httpx.post(f"{server_url}/api/embed", json={"model": "pooled", "input": "still here"}, timeout=60)
    assert r.status_code == 200
