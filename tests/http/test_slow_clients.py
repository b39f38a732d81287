"""Slow clients are closed: header and body read timeouts, and connections per client address.

The servers here use timeouts of about a second; the tests assert that the server closes
the connection (the socket reads EOF or is reset) and give it a generous upper bound, far
below the minutes a slow client held a connection before.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from llamarun.store import ModelStore
from serve_helpers import ROOT, Server, start_server

pytestmark = pytest.mark.timeout(300)

BOUND_S = 30.0  # generous: the configured timeouts are 1-2 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("slow-store")
    ModelStore(home).create("tiny", tiny_model_path)
    started = start_server(home, "--parallel", "1", "--ctx", "256", "--header-timeout", "1.5",
                           "--body-timeout", "1", "--max-connections-per-client", "64")
    try:
        yield started
    finally:
        started.stop()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND_S)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Read until the server closes (EOF or reset); fails if that takes longer than BOUND_S."""
    received = b""
    deadline = time.monotonic() + BOUND_S
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return received
            received += data
    except ConnectionResetError:
        return received
    except socket.timeout:
        pass
    finally:
        sock.close()
    pytest.fail(f"the server kept the connection open; it sent {received[:200]!r}")


def test_headers_that_never_finish_are_closed(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: localhost\r\n")  # no blank line: never finishes
    reply = _closed_by_server(sock)
    assert reply.startswith(b"HTTP/1.1 408") and b"headers" in reply, reply[:200]
    assert _closed_by_server(_connect(server)) == b""  # a connection that sends nothing is closed too


def test_one_header_line_every_so_often_is_closed_after_the_header_timeout(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: localhost\r\n")
    deadline = time.monotonic() + BOUND_S
    closed = False
    i = 0
    while time.monotonic() < deadline and not closed:
        time.sleep(0.4)  # well inside the header timeout, so each line alone would keep it open
        i += 1
        try:
            sock.sendall(f"X-Slow-{i}: {i}\r\n".encode())
            sock.settimeout(0.01)
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        closed = not data or data.startswith(b"HTTP/1.1 408")
    sock.close()
    assert closed, "the server kept reading one header line every 0.4 s"


def test_body_shorter_than_its_content_length_is_closed(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n" + b'{"model": "tiny", "prompt": "')
    _closed_by_server(sock)
    assert httpx.get(f"{server.url}/api/tags").status_code == 200


def test_a_stalled_blob_upload_releases_the_blob_lock(server: Server) -> None:
    data = b"not a model, just bytes " * 200
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sock = _connect(server)
    sock.sendall(f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:100])  # then stalls holding the lock
    time.sleep(0.3)
    r = httpx.post(f"{server.url}/api/blobs/{digest}", content=data, timeout=BOUND_S,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "GGUF" in r.text, r.text  # it got the lock and read its body
    _closed_by_server(sock)


def test_normal_clients_are_unaffected(server: Server, tiny_model_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/api/tags").status_code == 200
        time.sleep(2.5)  # idle on a kept-alive connection for longer than the header timeout
        assert client.get("/api/tags").status_code == 200
        r = client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "raw": True, "stream": False,
                                               "options": {"num_predict": 8}})
        assert r.status_code == 200 and r.json()["done"]
    api = ollama.Client(host=server.url)
    assert api.create_blob(tiny_model_path).startswith("sha256:")
    chunks = list(api.generate(model="tiny", prompt="hi", raw=True, stream=True, options={"num_predict": 8}))
    assert chunks[-1].done


def test_connections_above_the_per_address_bound_are_refused(tmp_path: Path) -> None:
    ModelStore(tmp_path)
    server = start_server(tmp_path, "--max-connections-per-client", "3", "--header-timeout", "120")
    try:
        held = [_connect(server) for _ in range(3)]
        time.sleep(0.3)
        reply = _closed_by_server(_connect(server))
        assert reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply, reply[:200]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + BOUND_S  # the server counts the closed ones down as it sees them close
        while True:
            try:
                if httpx.get(f"{server.url}/api/tags", timeout=BOUND_S).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the closed connections were never counted down"
            time.sleep(0.2)
    finally:
        server.stop()


def test_bad_limits_are_refused_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "config.toml").touch()
    env = {**os.environ, "LLAMARUN_HOME": str(tmp_path), "LLAMARUN_CONFIG": str(tmp_path / "config.toml")}
    for flag, value, key in (("--header-timeout", "-1", "header_timeout"), ("--body-timeout", "soon", "body_timeout"),
                             ("--max-connections-per-client", "-3", "max_connections_per_client")):
        done = subprocess.run([sys.executable, "-m", "llamarun", "serve", "--port", "0", flag, value], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and key in done.stderr, (flag, done.stderr[-500:])
