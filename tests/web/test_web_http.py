"""The web routes over HTTP (no browser): content negotiation, headers, key/Host/CORS rules,
conversations in SQLite, the dashboard feed and its end on SIGTERM, ``--no-web``."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tinymodel import SPECIALS
from webhelpers import serve_helpers

pytestmark = pytest.mark.timeout(300)

KEY = "web-key-0123456789"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def tiny_server(web_home: Path):
    server = serve_helpers().start_server(web_home, "--parallel", "2", "--ctx", "256")
    try:
        yield server
    finally:
        server.stop()


def test_root_is_the_page_for_browsers_and_plain_text_for_api_clients(tiny_server) -> None:
    url = tiny_server.url
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}, {"Accept": "text/html;q=0"}):
        r = httpx.get(url + "/", headers=headers)
        assert r.status_code == 200 and r.text == "llamarun is running", headers
        assert r.headers["content-type"].startswith("text/plain")
    r = httpx.get(url + "/", headers=HTML)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script src="/web/static/chat.js"' in r.text and "<script>" not in r.text  # no inline script
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff" and "Accept" in r.headers["vary"]
    assert httpx.head(url + "/").status_code == 200


def test_static_files_are_a_fixed_list_with_their_types_and_licenses(tiny_server) -> None:
    url = tiny_server.url
    r = httpx.get(url + "/web/static/chat.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    again = httpx.get(url + "/web/static/chat.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    for name in ("vendor/marked.LICENSE", "vendor/dompurify.LICENSE", "vendor/highlight.js.LICENSE"):
        assert httpx.get(f"{url}/web/static/{name}").status_code == 200
    for name in ("../routes.py", "vendor/../chat.js", "..%2Froutes.py", "%2e%2e/routes.py", "nothing.js", ""):
        raw = http.client.HTTPConnection("127.0.0.1", tiny_server.port, timeout=30)  # sends the path as given
        raw.request("GET", f"/web/static/{name}")
        assert raw.getresponse().status == 404, name
        raw.close()
    r = httpx.get(url + "/dashboard")
    assert r.status_code == 200 and "dashboard.js" in r.text and "content-security-policy" in r.headers


def test_the_page_follows_the_apis_key_host_and_origin_rules(web_home: Path) -> None:
    server = serve_helpers().start_server(web_home, "--parallel", "1", "--ctx", "256", "--api-key", KEY)
    try:
        url, auth = server.url, {"Authorization": f"Bearer {KEY}"}
        for path in ("/", "/dashboard", "/web/static/chat.js"):  # static: the page asks for the key itself
            assert httpx.get(url + path, headers=HTML).status_code == 200, path
        for path in ("/web/conversations", "/web/dashboard/status", "/web/catalog"):
            assert httpx.get(url + path).status_code == 401, path
            assert httpx.get(url + path, headers=auth).status_code == 200, path
        assert httpx.post(url + "/web/conversations", json={"title": "t"}).status_code == 401
        evil = {"Host": "evil.example", **HTML}
        for path in ("/", "/dashboard", "/web/static/chat.js"):
            assert httpx.get(url + path, headers=evil).status_code == 403, path  # DNS rebinding
        cross = {**auth, "Origin": "http://evil.example"}
        assert httpx.post(url + "/web/conversations", json={"title": "t"}, headers=cross).status_code == 403
        form = {**auth, "Content-Type": "text/plain"}
        assert httpx.post(url + "/web/conversations", content=b'{"title":"t"}', headers=form).status_code == 415
        own = {**auth, "Origin": url}
        assert httpx.post(url + "/web/conversations", json={"title": "t"}, headers=own).status_code == 201
    finally:
        assert server.stop() == 0


def _conversation(title: str, text: str) -> dict:
    return {"title": title, "model": "tiny", "messages": [
        {"id": "u1", "role": "user", "content": text},
        {"id": "a1", "parent": "u1", "role": "assistant", "content": "first answer"},
        {"id": "a2", "parent": "u1", "role": "assistant", "content": "second answer"}], "current": "a2"}


def test_conversations_are_kept_in_sqlite_in_the_store_home(tmp_path: Path, tiny_model_path: Path) -> None:
    from llamarun.store import ModelStore

    ModelStore(tmp_path).create("tiny", tiny_model_path)
    server = serve_helpers().start_server(tmp_path, "--parallel", "1", "--ctx", "256")
    try:
        c = server.client()
        made = c.post("/web/conversations", json=_conversation("Dragons", "tell me about dragons")).json()
        other = c.post("/web/conversations", json=_conversation("Cats", "and cats %_")).json()
        assert made["id"] and made["id"] != other["id"] and made["created"] > 0
        assert [x["title"] for x in c.get("/web/conversations").json()["conversations"]] == ["Cats", "Dragons"]
        assert [x["id"] for x in c.get("/web/conversations", params={"q": "DRAGON"}).json()["conversations"]] == [
            made["id"]]
        assert [x["id"] for x in c.get("/web/conversations", params={"q": "%_"}).json()["conversations"]] == [
            other["id"]]  # LIKE wildcards are searched as text
        assert c.patch(f"/web/conversations/{made['id']}", json={"title": "Wyrms"}).json()["title"] == "Wyrms"
        got = c.get(f"/web/conversations/{made['id']}").json()
        assert got["title"] == "Wyrms" and [m["id"] for m in got["messages"]] == ["u1", "a1", "a2"]
        bad = _conversation("Broken", "x")
        bad["messages"][1]["parent"] = "nowhere"
        r = c.post("/web/conversations", json=bad)
        assert r.status_code == 400 and "nowhere" in r.text
        assert c.post("/web/conversations", json={"title": "x", "extra": 1}).status_code == 400
        assert c.get("/web/conversations/unknown").status_code == 404
        exported = c.get("/web/conversations/export").json()
        assert len(exported["conversations"]) == 2
        assert c.delete(f"/web/conversations/{other['id']}").status_code == 204
        assert c.delete(f"/web/conversations/{other['id']}").status_code == 404
        imported = c.post("/web/conversations/import", json=exported).json()["imported"]
        assert len(imported) == 2 and not set(imported) & {made["id"], other["id"]}  # copies, new ids
    finally:
        assert server.stop() == 0
    assert (tmp_path / "conversations.db").is_file()
    server = serve_helpers().start_server(tmp_path, "--parallel", "1", "--ctx", "256")
    try:  # a restarted server finds them
        assert len(server.client().get("/web/conversations").json()["conversations"]) == 3
    finally:
        assert server.stop() == 0


def test_dashboard_feed_streams_views_and_ends_when_the_server_drains(web_home: Path) -> None:
    server = serve_helpers().start_server(web_home, "--parallel", "2", "--ctx", "256", "--preload", "tiny")
    views: list[dict] = []
    ended = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", server.url + "/web/dashboard/events", params={"interval": 0.2}, timeout=60) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data:"):
                    views.append(json.loads(line[5:]))
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    try:
        reader.start()
        c = server.client()
        c.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                      "options": {"num_predict": 8, "ignore_eos": True}}).raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v["recent"] for v in views):
            time.sleep(0.1)
        view = views[-1]
        model = view["models"][0]
        assert model["name"] == "tiny:latest" and model["n_slots"] == 2 and len(model["slots"]) == 2
        assert model["generated_tokens"] == server.metric("llamarun_generated_tokens_total", model="tiny:latest")
        assert model["slots"][0]["phase"] == "idle" and model["busy_slots"] == 0
        row = view["recent"][0]
        assert row["outcome"] == "length" and row["generated_tokens"] == 8 and row["model"] == "tiny:latest"
        assert "prompt" not in row and "text" not in row  # counts and times only
        started = time.monotonic()
        assert server.stop() == 0
        assert ended.wait(10)
        assert time.monotonic() - started < 10  # an open dashboard does not hold the drain
    finally:
        server.stop()


PROMPT = "<img src=x onerror=alert(1)> " + "tell me about the lighthouse keeper " * 10  # longer than 200


def _recent_after(server, body: dict, path: str = "/api/generate") -> tuple[dict, str]:
    """The dashboard's row of the request ``body`` (the newest), and the whole view as JSON text."""
    c = server.client()
    before = {r["id"] for r in c.get("/web/dashboard/status").json()["recent"]}
    c.post(path, json=body).raise_for_status()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = c.get("/web/dashboard/status")
        rows = [row for row in r.json()["recent"] if row["id"] not in before]
        if rows:
            return rows[0], r.text
        time.sleep(0.1)
    raise AssertionError("the request never reached the dashboard's recent requests")


def test_recent_requests_keep_no_prompt_text_without_log_prompts(tiny_server) -> None:
    body = {"model": "tiny", "prompt": PROMPT[:100], "stream": False, "options": {"num_predict": 2}}  # ctx 256
    row, text = _recent_after(tiny_server, body)
    assert row["prompt_tokens"] > 0 and "prompt" not in row
    assert "lighthouse" not in text and "onerror" not in text  # nothing of the prompt in the view


def test_log_prompts_keeps_the_first_200_characters(web_home: Path) -> None:
    server = serve_helpers().start_server(web_home, "--parallel", "1", "--ctx", "512", "--log-prompts")
    try:
        raw = {"model": "tiny", "prompt": PROMPT, "raw": True, "stream": False, "options": {"num_predict": 2}}
        row, _ = _recent_after(server, raw)
        assert row["prompt"] == PROMPT[:200] and len(row["prompt"]) == 200  # as sent, untouched
        chat = {"model": "tiny", "stream": False, "options": {"num_predict": 2},
                "messages": [{"role": "user", "content": "Hello <b>there</b>, keeper"}]}
        row, _ = _recent_after(server, chat, "/api/chat")
        assert "Hello <b>there</b>, keeper" in row["prompt"]  # the templated prompt as the model reads it
        assert "<|im_start|>" in row["prompt"] and len(row["prompt"]) <= 200
        ids = [len(SPECIALS) + b for b in b"keeper <i>"]  # the tiny vocabulary's byte tokens
        row, _ = _recent_after(server, {"model": "tiny", "prompt": ids, "max_tokens": 2}, "/v1/completions")
        assert row["prompt"] == "keeper <i>"  # token ids: detokenized by the model
    finally:
        assert server.stop() == 0


def test_no_web_turns_both_off(web_home: Path) -> None:
    server = serve_helpers().start_server(web_home, "--parallel", "1", "--ctx", "256", "--no-web")
    try:
        r = httpx.get(server.url + "/", headers=HTML)
        assert r.status_code == 200 and r.text == "llamarun is running"
        for path in ("/dashboard", "/web/static/chat.js", "/web/conversations", "/web/dashboard/events"):
            assert httpx.get(server.url + path).status_code == 404, path
    finally:
        assert server.stop() == 0
