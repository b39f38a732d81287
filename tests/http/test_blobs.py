"""Uploading a model file (`/api/blobs`) and creating a model from it, as `ollama create` does,
with the official `ollama` client against a real `llamarun serve` on its own store."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from llamarun.store import ModelStore
from serve_helpers import Server, start_server
from tinymodel import write_tiny_gguf

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("blob-store")
    ModelStore(home)
    started = start_server(home, "--max-body-bytes", "4096")  # uploads have a limit of their own
    try:
        yield started
    finally:
        started.stop()


def _blobs(server: Server) -> list[str]:
    return sorted(p.name for p in (server.home / "blobs").glob("*")) if (server.home / "blobs").is_dir() else []


def test_upload_then_create_then_generate_with_the_ollama_client(server: Server, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "upload.gguf", seed=3)
    assert path.stat().st_size > 4096
    client = ollama.Client(host=server.url, timeout=120)
    digest = client.create_blob(path)
    assert digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    client.create(model="uploaded", files={"upload.gguf": digest})
    assert "uploaded:latest" in [m.model for m in client.list().models]
    reply = client.generate(model="uploaded", prompt="hi", options={"num_predict": 4, "temperature": 0})
    assert reply.done and reply.eval_count == 4
    again = httpx.post(f"{server.url}/api/blobs/{digest}", content=path.read_bytes())
    assert again.status_code == 200  # already stored
    with pytest.raises(ollama.ResponseError, match="adapters") as refused:  # never dropped silently
        client.create(model="with-lora", files={"upload.gguf": digest}, adapters={"lora.gguf": digest})
    assert refused.value.status_code == 400
    client.delete("uploaded")


def test_bad_uploads_are_refused_and_nothing_is_stored(server: Server, tmp_path: Path) -> None:
    before = _blobs(server)
    data = write_tiny_gguf(tmp_path / "m.gguf", seed=4).read_bytes()
    wrong = "sha256:" + "0" * 64
    r = httpx.post(f"{server.url}/api/blobs/{wrong}", content=data)
    assert r.status_code == 400 and "sha256" in r.json()["error"]
    not_gguf = b"not a model" * 100
    r = httpx.post(f"{server.url}/api/blobs/sha256:{hashlib.sha256(not_gguf).hexdigest()}", content=not_gguf)
    assert r.status_code == 400 and "GGUF" in r.json()["error"]
    for bad in ("sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:abc"):
        assert httpx.post(f"{server.url}/api/blobs/{bad}", content=data).status_code in (400, 404)
    assert httpx.head(f"{server.url}/api/blobs/{wrong}").status_code == 404
    r = httpx.post(f"{server.url}/api/create", json={"model": "ghost", "files": {"x.gguf": wrong}})
    assert r.status_code == 404 and "/api/blobs/" in r.json()["error"]
    assert _blobs(server) == before
    assert not list((server.home / "partial").glob("*.tmp"))  # no partial upload left behind
    assert httpx.post(f"{server.url}/api/show", content=b"x" * 5000).status_code == 413  # other bodies: 4 KiB


def test_stalled_uploads_hold_no_worker_and_their_partial_file_survives_gc(server: Server, tmp_path: Path) -> None:
    """70 clients (more than the worker pool's 64 threads) start uploading one blob and stall:
    the server keeps answering, `gc` leaves the partial file of the upload that holds the blob's
    lock alone, and the partial file is gone once the clients are."""
    data = write_tiny_gguf(tmp_path / "slow.gguf", seed=5).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    head = (f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    partials = server.home / "partial"
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(70)]
    try:
        for sock in sockets:
            sock.sendall(head + data[:1000])
        _wait_for(lambda: any(partials.glob("*.tmp")))
        assert httpx.get(f"{server.url}/api/tags", timeout=10).status_code == 200
        assert ModelStore(server.home).gc() is not None
        assert len(list(partials.glob("*.tmp"))) == 1  # one upload writes, the others wait for its lock
    finally:
        for sock in sockets:
            sock.close()
    _wait_for(lambda: not any(partials.glob("*.tmp")))
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 404


def _wait_for(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
