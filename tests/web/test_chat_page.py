"""The chat page in headless Chromium against a real SmolLM2 server: a streamed answer, stop
(the server's slot is freed), the conversation found again after a reload and in a second
browser context, edit-and-resend keeping both branches; screenshots light/dark, desktop/phone."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from webhelpers import last_answer, open_chat, screenshot, set_max_tokens, wait_answer_done, wait_until, watch

pytestmark = [pytest.mark.browser, pytest.mark.smollm2, pytest.mark.timeout(300)]

PHONE = {"width": 390, "height": 844}


def running(server: Any) -> int:
    return sum(m.get("running", 0) for m in server.health()["models"])


def test_streams_stops_and_finds_the_conversation_again(web_server: Any, browser: Any, page: Any,
                                                        page_errors: list[str]) -> None:
    url = web_server.url
    open_chat(page, url)
    set_max_tokens(page, 48)
    page.fill("#prompt", "Name three colours of the rainbow.")
    page.press("#prompt", "Enter")  # Enter sends
    page.wait_for_selector("article.assistant.streaming")
    lengths: list[int] = []
    while page.locator("article.assistant.streaming").count():  # the answer grows while it streams
        lengths.append(len(last_answer(page).locator(".body").inner_text()))
        time.sleep(0.03)
    wait_answer_done(page)
    grew = sorted(set(lengths))
    assert len(grew) >= 4, f"the answer did not appear token by token: lengths seen {grew}"
    first = last_answer(page).inner_text()
    assert "tok/s" in first and "cached" in first  # speeds and cached tokens under the answer

    set_max_tokens(page, 900)  # long enough to be stopped mid-answer
    page.fill("#prompt", "Now write a very long story about a lighthouse keeper, with many chapters.")
    page.click("#send")
    wait_until(page, "() => (document.querySelector('article.assistant.streaming .body')?.innerText || '').length > 40")
    assert running(web_server) == 1
    page.click("#stop")
    deadline = time.monotonic() + 5
    while running(web_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(web_server) == 0, "the slot was not freed after Stop"
    wait_answer_done(page, 10)
    assert "(stopped)" in last_answer(page).inner_text()
    conv_id = page.evaluate("location.hash.slice(1)")
    assert conv_id

    page.reload()  # kept on the server: found again after a reload
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("article.assistant >> nth=1")
    assert page.locator("article.user").count() == 2
    assert "rainbow" in page.locator("article.user").first.inner_text()
    assert "(stopped)" in last_answer(page).inner_text()

    other = browser.new_context(viewport={"width": 1280, "height": 800})  # another browser profile
    try:
        second = other.new_page()
        watch(second, page_errors)
        second.goto(url + "/")
        second.wait_for_selector("body[data-ready=true]")
        second.click(f"#conversations li[data-id='{conv_id}'] .open")
        second.wait_for_selector("article.assistant >> nth=1")
        assert "lighthouse" in second.locator("article.user").last.inner_text()
    finally:
        other.close()
    assert not page_errors, page_errors


def test_edit_and_resend_keeps_both_branches(web_server: Any, page: Any, page_errors: list[str]) -> None:
    open_chat(page, web_server.url)
    set_max_tokens(page, 24)
    page.fill("#prompt", "Say hello to Alice.")
    page.press("#prompt", "Enter")
    page.wait_for_selector("article.assistant")
    wait_answer_done(page)
    page.click("article.user .edit")
    page.fill("article.user .edit-box", "Say hello to Bob.")
    page.click("article.user .row .primary")
    page.wait_for_selector("article.assistant.streaming")
    wait_answer_done(page)
    assert page.locator("article.user").inner_text().startswith("Say hello to Bob.")
    assert page.locator("article.user .branch-count").inner_text() == "2/2"
    page.click("article.user [aria-label='Previous version']")  # back to the first branch
    wait_until(page, "() => document.querySelector('article.user .plain').innerText.includes('Alice')")
    assert page.locator("article.user .branch-count").inner_text() == "1/2"
    conv_id = page.evaluate("location.hash.slice(1)")
    stored = httpx.get(f"{web_server.url}/web/conversations/{conv_id}", timeout=30).json()
    users = [m for m in stored["messages"] if m["role"] == "user"]
    assert [m["content"] for m in users] == ["Say hello to Alice.", "Say hello to Bob."]
    assert {m["parent"] for m in users} == {None}  # siblings: both branches kept
    assert len([m for m in stored["messages"] if m["role"] == "assistant"]) == 2
    assert not page_errors, page_errors


def test_screenshots_light_dark_desktop_phone(web_server: Any, browser: Any) -> None:
    url = web_server.url
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    try:
        page = context.new_page()
        watch(page, errors)
        open_chat(page, url)
        set_max_tokens(page, 120)
        page.click("#settings-open")
        page.select_option("#preset", "greedy")
        page.click("#settings-open")
        page.fill("#prompt", "Write a Python function that adds two numbers, in a code block.")
        page.press("#prompt", "Enter")
        page.wait_for_selector("article.assistant")
        wait_answer_done(page)
        conv_id = page.evaluate("location.hash.slice(1)")
        screenshot(page, "chat-light-desktop")
    finally:
        context.close()
    for scheme, viewport, name in (("dark", {"width": 1280, "height": 800}, "chat-dark-desktop"),
                                   ("light", PHONE, "chat-light-phone"), ("dark", PHONE, "chat-dark-phone")):
        context = browser.new_context(viewport=viewport, color_scheme=scheme)
        try:
            page = context.new_page()
            watch(page, errors)
            page.goto(f"{url}/#{conv_id}")
            page.wait_for_selector("body[data-ready=true]")
            page.wait_for_selector("article.assistant")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: the page is wider than the screen ({width}px)"
            screenshot(page, name)
        finally:
            context.close()
    assert not errors, errors
