"""A client that goes away cancels its request, during prefill or decode, streaming or not."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)


def _send(server: Server, path: str, body: dict) -> socket.socket:
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    sock.sendall(head + payload)
    return sock


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _running(server: Server) -> int:
    return sum(m.get("running", 0) for m in server.health()["models"] if m["name"] == "smollm2:latest")


def _long_prompt() -> str:
    return f"{uuid.uuid4()} " + " ".join(f"item{i}" for i in range(450))  # ~1,700 tokens, never cached


def _warm(server: Server) -> None:
    sock = _send(server, "/api/generate", {"model": "smollm2", "prompt": "hi", "stream": False,
                                           "options": {"num_predict": 1}})
    sock.recv(65536)
    sock.close()


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_during_prefill_cancels(smol_server: Server, stream: bool) -> None:
    _warm(smol_server)
    cancelled = smol_server.metric("llamarun_requests_finished_total", model="smollm2:latest", outcome="cancelled")
    generated = smol_server.metric("llamarun_generated_tokens_total", model="smollm2:latest")
    sock = _send(smol_server, "/api/generate", {"model": "smollm2", "prompt": _long_prompt(), "raw": True,
                                                "stream": stream, "options": {"num_predict": 200}})
    _wait(lambda: _running(smol_server) == 1, "the request to start its prefill")
    sock.close()
    _wait(lambda: _running(smol_server) == 0, "the slot to be freed")
    _wait(lambda: smol_server.metric("llamarun_requests_finished_total", model="smollm2:latest",
                                     outcome="cancelled") == cancelled + 1, "the cancelled outcome")
    # it never reached decoding: not one token was generated for it
    assert smol_server.metric("llamarun_generated_tokens_total", model="smollm2:latest") == generated


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_disconnect_mid_stream_cancels(smol_server: Server, path: str) -> None:
    _warm(smol_server)
    cancelled = smol_server.metric("llamarun_requests_finished_total", model="smollm2:latest", outcome="cancelled")
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Count to one thousand."}], "stream": True}
    body.update({"options": {"num_predict": 1500, "ignore_eos": True}} if path == "/api/chat"
                else {"max_tokens": 1500, "ignore_eos": True})
    sock = _send(smol_server, path, body)
    received = b""
    while received.count(b"\n") < 12:  # headers plus a few streamed tokens
        received += sock.recv(4096)
    assert b" 200 OK" in received.split(b"\r\n", 1)[0]
    sock.close()
    _wait(lambda: _running(smol_server) == 0, "the slot to be freed")
    _wait(lambda: smol_server.metric("llamarun_requests_finished_total", model="smollm2:latest",
                                     outcome="cancelled") == cancelled + 1, "the cancelled outcome")
    assert smol_server.health()["in_flight"] <= 1  # only the health request itself


def test_timeout_ends_a_request(smol_server: Server) -> None:
    import httpx

    # a deadline answers the partial text (tests/http/test_deadlines.py covers every form)
    r = httpx.post(f"{smol_server.url}/api/generate", timeout=60, headers={"X-Request-Timeout": "0.5"},
                   json={"model": "tiny", "prompt": "x", "raw": True, "stream": False,
                         "options": {"num_predict": 2000, "ignore_eos": True}})
    assert r.status_code == 200 and r.json()["done_reason"] == "deadline" and r.json()["eval_count"] < 2000
    r = httpx.post(f"{smol_server.url}/api/generate", timeout=60, json={
        "model": "tiny", "prompt": "x", "raw": True, "stream": False,
        "options": {"num_predict": 2000, "ignore_eos": True, "timeout": 0.5}})
    assert r.status_code == 200 and r.json()["done_reason"] == "deadline"
    r = httpx.post(f"{smol_server.url}/api/generate", timeout=60, headers={"X-Request-Timeout": "soon"},
                   json={"model": "tiny", "prompt": "x"})
    assert r.status_code == 400 and "X-Request-Timeout" in r.json()["error"]
