"""The dashboard in headless Chromium while SmolLM2 serves 8 requests on 4 slots: 4 busy slots,
4 waiting, tokens coming out; its numbers match /metrics; a screenshot under load."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from webhelpers import screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.smollm2, pytest.mark.timeout(300)]

MODEL = "smollm2:latest"


def _stream(url: str, stop: threading.Event, index: int) -> None:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": f"Count upwards from {index}."}],
            "stream": True, "max_tokens": 900, "ignore_eos": True}
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    return  # leaving the stream cancels the request on the server
    except httpx.HTTPError:
        pass


def test_dashboard_under_load_matches_metrics(web_server: Any, page: Any, page_errors: list[str]) -> None:
    url = web_server.url
    page.goto(url + "/dashboard")
    wait_until(page, "() => Number(document.body.dataset.views || 0) >= 1")
    cancelled_before = web_server.metric("llamarun_requests_finished_total", model=MODEL, outcome="cancelled")
    stop = threading.Event()
    clients = [threading.Thread(target=_stream, args=(url, stop, i), daemon=True) for i in range(8)]
    try:
        for client in clients:
            client.start()
        wait_until(page, "() => document.getElementById('t-busy').textContent === '4/4'"
                         " && document.getElementById('t-queue').textContent === '4'", timeout_s=60)
        wait_until(page, "() => Number(document.getElementById('t-out').textContent) > 0", timeout_s=20)
        box = page.locator(f".model[data-model='{MODEL}']")
        assert box.locator(".slot[data-phase='generating'], .slot[data-phase='prefill']").count() == 4
        assert box.locator(".slot[data-phase='idle']").count() == 0
        shown_rate = float(page.inner_text("#t-out"))
        view = httpx.get(url + "/web/dashboard/status", timeout=30).json()
        model = next(m for m in view["models"] if m["name"] == MODEL)
        assert web_server.metric("llamarun_requests_running", model=MODEL) == model["running"] == 4
        assert web_server.metric("llamarun_queue_depth", model=MODEL) == model["queue_depth"] == 4
        assert web_server.metric("llamarun_slots", model=MODEL) == model["n_slots"] == 4
        assert web_server.metric("llamarun_kv_cells_total", model=MODEL) == model["kv_cells_total"]
        generated = web_server.metric("llamarun_generated_tokens_total", model=MODEL)
        assert 0 < model["generated_tokens"] <= generated  # /metrics was read after the view
        assert shown_rate > 0 and model["tokens_per_s_out"] > 0
        assert len(model["waiting_ages_s"]) == 4
        time.sleep(1.5)  # a little history for the charts
        screenshot(page, "dashboard-under-load", full_page=True)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    wait_until(page, "() => document.getElementById('t-busy').textContent === '0/4'"
                     " && document.getElementById('t-queue').textContent === '0'", timeout_s=30)
    cancelled = web_server.metric("llamarun_requests_finished_total", model=MODEL, outcome="cancelled")
    assert cancelled - cancelled_before == 8
    wait_until(page, "() => document.querySelector(\"[data-outcome='cancelled'] b\").textContent"
                     f" === '{int(cancelled)}'", timeout_s=10)
    assert page.locator("#recent tbody tr td.outcome-cancelled").count() >= 8
    assert page.locator("#recent td.prompt-text").count() == 0  # no prompt text without --log-prompts
    assert page.locator("#prompt-text-head").is_hidden()
    assert not page_errors, page_errors
