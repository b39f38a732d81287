"""Safe by default: Host check, API key, CORS, body and header limits, range checks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from llamarun.errors import ConfigError
from llamarun.http import HttpConfig
from serve_helpers import ROOT, Server, start_server

pytestmark = pytest.mark.timeout(300)

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server(model_home: Path) -> Iterator[Server]:
    server = start_server(model_home, "--parallel", "2", "--ctx", "512", "--api-key", KEY,
                          "--max-body-bytes", "100000", "--cors-origin", "http://app.example")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("host,allowed", [
    ("localhost", True), ("localhost:11434", True), ("127.0.0.1", True), ("127.0.0.5:80", True), ("[::1]:1", True),
    ("evil.example", False), ("evil.example:11434", False), ("127.0.0.1.evil.example", False), ("0.0.0.0", False),
    ("192.168.1.10", False),
])
def test_host_header_check_on_loopback(smol_server: Server, host: str, allowed: bool) -> None:
    r = httpx.get(f"{smol_server.url}/api/tags", headers={"Host": host})
    assert (r.status_code == 200) is allowed
    if not allowed:
        assert r.status_code == 403 and "not allowed" in r.json()["error"]


def test_api_key_required(keyed_server: Server) -> None:
    url = keyed_server.url
    assert httpx.get(f"{url}/").status_code == 200  # liveness stays open
    assert httpx.get(f"{url}/api/tags").status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/api/tags", headers={"Authorization": "Bearer wrong-key-000"}).status_code == 401
    r = httpx.get(f"{url}/v1/models", headers={"Authorization": "Basic " + KEY})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{url}/api/tags", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
    assert openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0).models.list().data
    client = ollama.Client(host=url, headers={"Authorization": f"Bearer {KEY}"})
    assert client.generate(model="tiny", prompt="hi", raw=True, options={"num_predict": 2}).done


def test_cors_is_off_by_default_and_configurable(smol_server: Server, keyed_server: Server) -> None:
    r = httpx.get(f"{smol_server.url}/api/tags", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    preflight = httpx.options(f"{smol_server.url}/api/chat", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers

    preflight = httpx.options(f"{keyed_server.url}/api/chat", headers={
        "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(f"{keyed_server.url}/api/chat", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_non_loopback_bind_needs_a_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.touch()
    env = {"LLAMARUN_HOME": str(tmp_path), "LLAMARUN_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "llamarun", "serve", "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "--api-key" in proc.stderr and "--insecure" in proc.stderr
    with pytest.raises(ConfigError):
        HttpConfig(host="0.0.0.0")
    assert HttpConfig(host="0.0.0.0", api_key=KEY).api_key == KEY
    assert HttpConfig(host="0.0.0.0", insecure=True).insecure
    with pytest.raises(ConfigError):
        HttpConfig(host="::", api_key="short")


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_body_limits(keyed_server: Server) -> None:
    url = keyed_server.url
    big = {"model": "tiny", "prompt": "x" * 200_000}
    r = httpx.post(f"{url}/api/generate", json=big, headers=_auth())
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    r = httpx.post(f"{url}/api/generate", content=chunks(),  # chunked, no Content-Length
                   headers={**_auth(), "Content-Type": "application/json"})
    assert r.status_code == 413

    r = httpx.post(f"{url}/api/generate", content=b"\x1f\x8b" + b"\x00" * 100,
                   headers={**_auth(), "Content-Encoding": "gzip"})
    assert r.status_code == 415


def _read_reply(sock: socket.socket, until: bytes | None = None) -> bytes:
    """What the server sends until it closes (or until ``until`` has arrived); then close the socket."""
    response = b""
    try:
        while until is None or until not in response:
            data = sock.recv(4096)
            if not data:
                break
            response += data
    except OSError:
        pass
    sock.close()
    return response


def test_endless_body_is_cut_off(keyed_server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", keyed_server.port), timeout=30)
    sock.sendall((f"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n"
                  "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n").encode())
    chunk = b"%x\r\n%s\r\n" % (8192, b"y" * 8192)
    sent = 0
    try:
        while sent < 50_000_000:  # the server must answer long before this
            sock.sendall(chunk)
            sent += 8192
    except OSError:
        pass
    response = _read_reply(sock, until=b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 10_000_000
    assert httpx.get(f"{keyed_server.url}/api/tags", headers=_auth()).status_code == 200  # still serving


def test_huge_headers_are_refused(smol_server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", smol_server.port), timeout=30)
    sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    response = _read_reply(sock)
    assert not response or response.startswith(b"HTTP/1.1 4"), response[:200]
    assert httpx.get(f"{smol_server.url}/api/tags").status_code == 200


OLLAMA_BAD = [
    ({"options": {"temperature": -1}}, "options.temperature"),
    ({"options": {"num_ctx": 10**12}}, "options.num_ctx"),
    ({"options": {"seed": 2**70}}, "options.seed"),
    ({"options": {"top_k": -5}}, "options.top_k"),
    ({"options": {"num_predict": -3}}, "options.num_predict"),
    ({"options": {"top_p": "high"}}, "options.top_p"),
    ({"options": {"stop": ["x"] * 100}}, "options.stop"),
    ({"options": {"timeout": -1}}, "options.timeout"),
    ({"keep_alive": "forever"}, "keep_alive"),
    ({"top_logprobs": 1000}, "top_logprobs"),
    ({"context": [-1]}, "context"),
]


@pytest.mark.parametrize("extra,field", OLLAMA_BAD)
def test_ollama_numbers_are_range_checked(smol_server: Server, extra: dict, field: str) -> None:
    r = httpx.post(f"{smol_server.url}/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False, **extra})
    if field == "context":  # a token id outside the vocabulary is checked by the engine
        assert r.status_code == 400
        return
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]


OPENAI_BAD = [
    ({"max_tokens": -1}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
    ({"logit_bias": {"1": 500}}, "logit_bias"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"999999999": 1}}, "logit_bias"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"seed": 2**64}, "seed"),
    ({"stop": ["s"] * 40}, "stop"),
]


@pytest.mark.parametrize("extra,field", OPENAI_BAD)
def test_openai_numbers_are_range_checked(smol_server: Server, extra: dict, field: str) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **extra}
    r = httpx.post(f"{smol_server.url}/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert field in error["message"] or error["param"] == field


def test_nan_and_unknown_keys(smol_server: Server) -> None:
    raw = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    r = httpx.post(f"{smol_server.url}/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
    r = httpx.post(f"{smol_server.url}/api/generate", json={
        "model": "tiny", "prompt": "hi", "raw": True, "stream": False,
        "options": {"num_predict": 1, "not_an_option": 3, "use_mmap": True}})
    assert r.status_code == 200  # Ollama ignores unknown option keys (with a warning)


def test_unknown_model_is_404_everywhere(smol_server: Server) -> None:
    url = smol_server.url
    for method, path, body in [
        ("POST", "/api/generate", {"model": "ghost", "prompt": "hi"}),
        ("POST", "/api/chat", {"model": "ghost", "messages": [{"role": "user", "content": "hi"}]}),
        ("POST", "/api/embed", {"model": "ghost", "input": "hi"}),
        ("POST", "/api/show", {"model": "ghost"}),
        ("DELETE", "/api/delete", {"model": "ghost"}),
        ("POST", "/v1/completions", {"model": "ghost", "prompt": "hi"}),
        ("POST", "/v1/embeddings", {"model": "ghost", "input": "hi"}),
    ]:
        r = httpx.request(method, f"{url}{path}", content=json.dumps(body),
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 404, (path, r.text)
