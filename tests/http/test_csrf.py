"""Cross-site request forgery: a web page of another origin cannot change the server's state.

A browser sends a "simple" request (a form, ``text/plain``, no content type) to any
origin without a preflight: CORS hides the reply, but the request runs.  The server
refuses every state-changing request whose ``Origin`` (or ``Sec-Fetch-Site``) says it
comes from a page that is not allowed, and every JSON-API body that is not declared JSON.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from llamarun.store import ModelStore
from serve_helpers import Server, start_server

pytestmark = pytest.mark.timeout(300)

EVIL = "https://evil.example"
APP = "http://app.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("csrf-store")
    ModelStore(home).create("tiny", tiny_model_path)
    started = start_server(home, "--parallel", "2", "--ctx", "256", "--cors-origin", APP)
    try:
        yield started
    finally:
        started.stop()


def _names(server: Server) -> set[str]:
    return {m["name"] for m in httpx.get(f"{server.url}/api/tags").json()["models"]}


def _curl(*args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_issue_s_curl_request_is_refused_and_copies_nothing(server: Server) -> None:
    code, body = _curl("-H", f"Origin: {EVIL}", "-H", "Content-Type: text/plain;charset=UTF-8",
                       "-d", json.dumps({"source": "tiny", "destination": "csrf-proof"}), f"{server.url}/api/copy")
    assert code == 403, body
    assert "cross-origin" in json.loads(body)["error"] and EVIL in json.loads(body)["error"]
    assert "csrf-proof:latest" not in _names(server)
    # curl -d without -H sends application/x-www-form-urlencoded: a form a page can post, refused
    code, body = _curl("-d", json.dumps({"source": "tiny", "destination": "csrf-proof"}), f"{server.url}/api/copy")
    assert code == 415 and "application/json" in json.loads(body)["error"], body
    assert "csrf-proof:latest" not in _names(server)


SIMPLE_BODIES = [  # what a page can send without a preflight, plus the same from an unknown origin as JSON
    ({"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}, 403),
    ({"Origin": EVIL, "Content-Type": "application/json"}, 403),
    ({"Origin": "null", "Content-Type": "text/plain"}, 403),
    ({"Origin": "http://localhost:3000", "Content-Type": "text/plain"}, 403),  # another local dev server
    ({"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, 403),
    ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, 403),
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ({}, 415),  # fetch() with a Blob body and no type sends no Content-Type
]
ENDPOINTS = [
    ("POST", "/api/copy", {"source": "tiny", "destination": "csrf-proof"}),
    ("POST", "/api/pull", {"model": "http://127.0.0.1:9/x/csrf.gguf", "stream": False}),
    ("DELETE", "/api/delete", {"model": "tiny"}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "hi", "raw": True, "stream": False,
                               "options": {"num_predict": 2}}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                                      "max_tokens": 2}),
]


@pytest.mark.parametrize("method,path,payload", ENDPOINTS, ids=[p for _, p, _ in ENDPOINTS])
def test_state_changing_requests_from_pages_are_refused(server: Server, method: str, path: str,
                                                        payload: dict) -> None:
    for headers, status in SIMPLE_BODIES:
        r = httpx.request(method, f"{server.url}{path}", content=json.dumps(payload).encode(), headers=headers)
        assert r.status_code == status, (headers, r.text)
        error = r.json()["error"]
        message = error["message"] if isinstance(error, dict) else error
        assert ("cross-origin" in message) if status == 403 else ("application/json" in message), message
    names = _names(server)
    assert "tiny:latest" in names and "csrf-proof:latest" not in names and not any("csrf" in n for n in names)
    assert httpx.get(f"{server.url}/api/ps").json()["models"] == []  # nothing generated, nothing loaded


def test_allowed_and_same_origin_pages_and_json_types_work(server: Server) -> None:
    body = {"source": "tiny", "destination": "csrf-allowed"}
    r = httpx.post(f"{server.url}/api/copy", json=body, headers={"Origin": APP, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP
    own = f"http://127.0.0.1:{server.port}"
    r = httpx.request("DELETE", f"{server.url}/api/delete", json={"model": "csrf-allowed"},
                      headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200, r.text
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json", "Application/JSON"):
        r = httpx.post(f"{server.url}/api/show", content=b'{"model": "tiny"}',
                       headers={"Content-Type": content_type})
        assert r.status_code == 200, (content_type, r.text)
    assert httpx.get(f"{server.url}/api/tags", headers={"Origin": EVIL}).status_code == 200  # reads stay open
    assert "csrf-allowed:latest" not in _names(server)


def test_official_clients_still_work(server: Server, tiny_model_path: Path) -> None:
    client = ollama.Client(host=server.url)
    assert client.generate(model="tiny", prompt="hi", raw=True, options={"num_predict": 2}).done
    client.copy("tiny", "csrf-client-copy")
    assert "csrf-client-copy:latest" in _names(server)
    client.delete("csrf-client-copy")
    digest = client.create_blob(tiny_model_path)  # application/json on an octet body, as the client sends
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    chat = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = chat.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert reply.choices[0].finish_reason in ("length", "stop")


def test_blob_upload_is_refused_cross_origin_but_not_from_clients(server: Server, tmp_path: Path) -> None:
    data = b"not a model, " * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"{server.url}/api/blobs/{digest}"
    r = httpx.post(url, content=data, headers={"Origin": EVIL, "Content-Type": "application/octet-stream"})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    r = httpx.post(url, content=data, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/octet-stream" in r.json()["error"]
    for headers in ({"Content-Type": "application/octet-stream"}, {}):  # reaches the upload (not GGUF: 400)
        r = httpx.post(url, content=data, headers=headers)
        assert r.status_code == 400 and "GGUF" in r.text, r.text
    assert httpx.head(url).status_code == 404
