"""Model output is untrusted: a real SmolLM2 answer made of HTML and JavaScript (forced through the
page's JSON-schema mode) is shown as text, and nothing in it runs (page console, CSP reports, DOM)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from webhelpers import open_chat, wait_answer_done

pytestmark = [pytest.mark.browser, pytest.mark.smollm2, pytest.mark.timeout(300)]

PAYLOAD = ("<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"
           "<a href=javascript:window.__pwned=3>go</a> [click](javascript:window.__pwned=4) "
           "<iframe srcdoc=x></iframe><b onmouseover=window.__pwned=5>bold</b>")

WATCH_CSP = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
"""


def test_html_and_javascript_in_an_answer_are_shown_as_text(web_server: Any, page: Any,
                                                             page_errors: list[str]) -> None:
    page.add_init_script(WATCH_CSP)
    open_chat(page, web_server.url)
    page.click("#settings-open")
    page.check("#json-mode")
    page.fill("#json-schema", json.dumps({"type": "string", "enum": [PAYLOAD]}))
    page.dispatch_event("#json-schema", "change")
    page.click("#settings-open")
    page.fill("#prompt", "Answer.")
    page.press("#prompt", "Enter")
    page.wait_for_selector("article.assistant")
    wait_answer_done(page)
    answer = page.locator("article.assistant .markdown")
    shown = answer.inner_text()
    assert "<script>window.__pwned=2</script>" in shown and "<img src=x onerror" in shown  # as text
    dom = answer.evaluate("""(box) => ({
        elements: [...box.querySelectorAll('script, img, iframe, object, embed, style')].map((e) => e.tagName),
        handlers: [...box.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name))
                      .filter((name) => name.startsWith('on')),
        links: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href')),
    })""")
    assert dom["elements"] == [] and dom["handlers"] == [], dom
    assert all(href is None or not href.lower().startswith("javascript") for href in dom["links"]), dom
    for link in answer.locator("a").all():
        link.click()
    answer.hover()
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__violations") == []  # nothing even tried to run: CSP had nothing to stop
    assert not page_errors, page_errors


def test_stored_html_is_shown_as_text_too(web_server: Any, page: Any, page_errors: list[str]) -> None:
    """The same answer coming back from the server (a reload, another browser) renders the same way."""
    import httpx

    conversation = {"title": "hostile", "messages": [
        {"id": "u", "role": "user", "content": PAYLOAD},
        {"id": "a", "parent": "u", "role": "assistant", "content": "```html\n" + PAYLOAD + "\n```\n\n" + PAYLOAD,
         "thinking": PAYLOAD}], "current": "a"}
    made = httpx.post(f"{web_server.url}/web/conversations", json=conversation, timeout=30).json()
    page.add_init_script(WATCH_CSP)
    page.goto(f"{web_server.url}/#{made['id']}")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("article.assistant .markdown pre code")
    page.click("article.assistant details.thinking summary")
    assert page.locator("article.assistant pre code").inner_text().strip() == PAYLOAD
    assert PAYLOAD in page.locator("article.user .plain").inner_text()
    assert PAYLOAD in page.locator("article.assistant .thinking-text").inner_text()
    assert page.locator("article script, article img, article iframe").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__violations") == []
    assert not page_errors, page_errors
