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
from llamarun.runtime.manager import ManagerConfig
from llamarun.store import ModelStore
from tinymodel import write_tiny_gguf

pytestmark = pytest.mark.timeout(120)


def _write_pooled_model(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny model plus ``llama.pooling_type = 1`` (mean), as embedding models declare it."""

    class PoolingWriter(gguf.GGUFWriter):
        def write_header_to_file(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.add_pooling_type(gguf.PoolingType.MEAN)
            return super().write_header_to_file(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gguf, "GGUFWriter", PoolingWriter)
        return write_tiny_gguf(path)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[str]:
    home = tmp_path_factory.mktemp("embed-store")
    store = ModelStore(home)
    with pytest.MonkeyPatch.context() as monkeypatch:
        pooled = _write_pooled_model(home / "pooled.gguf", monkeypatch)
    store.create("pooled", pooled)
    store.create("tiny", tiny_model_path)
    config = HttpConfig(port=0)
    state = ServerState()
    app = create_app(config, store=store, state=state,
                     manager_config=ManagerConfig(threads=1, n_ctx=256, parallel=1, keep_alive=-1))
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
