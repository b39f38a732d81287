"""Regenerate, the system prompt, pulling a catalog model with its progress bar, and prompt text on
the dashboard (``serve --log-prompts``), in headless Chromium against a tiny-model server.

The pull goes to a local Ollama-style registry (tests/store/servers.py) through
``LLAMARUN_OLLAMA_REGISTRY``, as the store's own catalog tests do: no network."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.servers import LocalServer, Registry, ollama_handler
from tinymodel import write_tiny_gguf
from webhelpers import last_answer, serve_helpers, set_max_tokens, wait_answer_done, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CATALOG_NAME = "qwen3:0.6b"  # a catalog short name: ollama://library/qwen3:0.6b
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The catalog model's bytes (another tiny GGUF than the stored one), sent slowly enough for
    the page's progress bar to show steps (about 3 s for its ~470 KB)."""
    gguf = write_tiny_gguf(tmp_path_factory.mktemp("pulled") / "pulled.gguf", seed=7).read_bytes()
    models = Registry()
    models.add_model("library/qwen3", "0.6b", gguf)
    with LocalServer(ollama_handler(models)) as server:
        server.faults.throttle = 0.1  # seconds per 16 KiB
        yield server


@pytest.fixture(scope="module")
def tiny_web(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, registry: LocalServer) -> Iterator[Any]:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("features")
    ModelStore(home).create("tiny", tiny_model_path)
    server = serve_helpers().start_server(home, "--parallel", "2", "--ctx", "512", "--log-prompts",
                                          env={"LLAMARUN_OLLAMA_REGISTRY": registry.url})
    try:
        yield server
    finally:
        server.stop()


def open_tiny(page: Any, url: str) -> list[dict]:
    """Open the page on the tiny model; returns the bodies the page sends to the chat API."""
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith(CHAT) else None)
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#model", "tiny:latest")
    return sent


def say(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    page.wait_for_selector("article.assistant")
    wait_answer_done(page)


def stored(url: str, page: Any) -> dict:
    conv_id = page.evaluate("location.hash.slice(1)")
    assert conv_id
    return httpx.get(f"{url}/web/conversations/{conv_id}", timeout=30).json()


def wait_recent_prompt(url: str, text: str, timeout_s: float = 10) -> bool:
    """Whether a recent request's prompt on the dashboard holds ``text`` (within ``timeout_s``: the
    engine records a request just after its last token went out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        recent = httpx.get(url + "/web/dashboard/status", timeout=30).json()["recent"]
        if any(text in row.get("prompt", "") for row in recent):
            return True
        time.sleep(0.1)
    return False


def test_regenerate_asks_again_and_keeps_both_answers(tiny_web: Any, page: Any, page_errors: list[str]) -> None:
    sent = open_tiny(page, tiny_web.url)
    set_max_tokens(page, 8)
    say(page, "Tell me a story.")
    first = last_answer(page).locator(".body").inner_text()
    assert page.locator("article.assistant .branch-count").count() == 0  # one answer: no ‹ 1/1 ›
    page.click("article.assistant .regenerate")
    page.wait_for_selector("article.assistant .branch-count")  # the new answer is drawn at once (8 tokens of
    wait_answer_done(page)  # the tiny model may be done before a wait for its streaming state would see it)
    assert len(sent) == 2 and sent[1]["messages"] == sent[0]["messages"]  # the same question again
    assert [m["role"] for m in sent[1]["messages"]] == ["user"]  # not the first answer with it
    assert page.locator("article.user").count() == 1 and page.locator("article.assistant").count() == 1
    assert page.inner_text("article.assistant .branch-count") == "2/2"
    page.click("article.assistant [aria-label='Previous version']")
    wait_until(page, "() => document.querySelector('article.assistant .branch-count').textContent === '1/2'")
    assert last_answer(page).locator(".body").inner_text() == first
    deadline = time.monotonic() + 10
    while True:  # the page saves after each switch, in the background
        conv = stored(tiny_web.url, page)
        answers = [m for m in conv["messages"] if m["role"] == "assistant"]
        if conv["current"] == answers[0]["id"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert conv["current"] == answers[0]["id"]  # the branch shown last is the one saved as current
    (user,) = [m for m in conv["messages"] if m["role"] == "user"]
    assert len(answers) == 2 and {m["parent"] for m in answers} == {user["id"]}  # siblings, both kept
    assert not page_errors, page_errors


def test_the_system_prompt_goes_first_and_stays_with_the_conversation(tiny_web: Any, page: Any,
                                                                      page_errors: list[str]) -> None:
    system = "You are Zorblax, a pirate who answers <b>in rhymes</b>."
    sent = open_tiny(page, tiny_web.url)
    set_max_tokens(page, 4)
    page.click("#settings-open")
    page.fill("#system", system)
    page.click("#settings-open")
    say(page, "Ahoy?")
    assert sent[-1]["messages"] == [{"role": "system", "content": system}, {"role": "user", "content": "Ahoy?"}]
    assert wait_recent_prompt(tiny_web.url, system)  # the model read it (the server keeps prompts: --log-prompts)
    conv = stored(tiny_web.url, page)
    assert conv["system"] == system
    page.reload()  # the conversation brings its system prompt back
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("article.assistant")
    assert page.input_value("#system") == system
    page.click("#new-chat")  # a new chat keeps it too
    assert page.input_value("#system") == system
    page.click("#settings-open")
    page.fill("#system", "")
    page.click("#settings-open")
    say(page, "And now?")
    assert sent[-1]["messages"] == [{"role": "user", "content": "And now?"}]  # empty: no system message
    assert not page_errors, page_errors


def test_pulling_a_catalog_model_shows_its_progress(tiny_web: Any, registry: LocalServer, page: Any,
                                                    page_errors: list[str]) -> None:
    page.goto(tiny_web.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    wait_until(page, "() => document.querySelectorAll('#catalog option').length > 0")
    assert CATALOG_NAME in page.eval_on_selector_all("#catalog option", "(os) => os.map((o) => o.value)")
    assert CATALOG_NAME not in page.eval_on_selector_all("#model option", "(os) => os.map((o) => o.value)")
    page.click("#pull-open")
    page.fill("#pull-name", CATALOG_NAME)
    page.click("#pull-start")
    seen: list[dict] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = page.evaluate("""() => { const b = document.getElementById('pull-progress');
            return {hidden: b.hidden, value: b.value, max: b.max, indeterminate: !b.hasAttribute('value'),
                    status: document.getElementById('pull-status').textContent,
                    busy: document.getElementById('pull-start').disabled}; }""")
        seen.append(state)
        if state["status"].startswith(("pulled", "failed")):
            break
        time.sleep(0.05)
    assert seen[-1]["status"] == f"pulled {CATALOG_NAME}", seen[-1]
    wait_until(page, "() => !document.getElementById('pull-start').disabled")  # after the model list reloads
    bar = page.evaluate("() => { const b = document.getElementById('pull-progress'); return [b.value, b.max, b.hidden]; }")
    assert bar == [1, 1, False]  # full
    steps = [s for s in seen if not s["indeterminate"] and 0 < s["value"] < s["max"] and s["max"] > 1000]
    assert len({s["value"] for s in steps}) >= 3, f"the bar did not move: {seen}"  # bytes as they came
    assert all(s["busy"] for s in steps)  # the button waits for the pull
    assert any(s["status"].endswith("%") and not s["status"].endswith(" 100%") for s in steps), steps
    values = [s["value"] for s in steps]
    assert values == sorted(values)  # never backwards
    assert page.input_value("#model") == CATALOG_NAME  # picked once pulled
    tags = httpx.get(tiny_web.url + "/api/tags", timeout=30).json()["models"]
    assert CATALOG_NAME in [m["name"] for m in tags]
    assert registry.gets("/manifests/0.6b")  # from the local registry, not the network
    assert not page_errors, page_errors


def test_the_dashboard_shows_prompt_text_as_text(tiny_web: Any, page: Any, page_errors: list[str]) -> None:
    prompt = ("<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"
              "<b onmouseover=window.__pwned=3>bold</b> keeper")
    httpx.post(tiny_web.url + "/api/generate", timeout=60, json={
        "model": "tiny", "prompt": prompt, "raw": True, "stream": False, "options": {"num_predict": 2}},
    ).raise_for_status()
    assert wait_recent_prompt(tiny_web.url, prompt)
    page.goto(tiny_web.url + "/dashboard")
    wait_until(page, "() => Number(document.body.dataset.views || 0) >= 1")
    assert page.locator("#prompt-text-head").is_visible()
    cells = page.locator("#recent td.prompt-text")
    assert prompt in cells.all_text_contents()  # the characters as sent
    table = page.locator("#recent")
    assert table.locator("img, script, b").count() == 0  # nothing of it became an element
    table.hover()
    assert page.evaluate("window.__pwned") is None
    assert not page_errors, page_errors
