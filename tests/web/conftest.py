"""Fixtures of the web page tests: a SmolLM2 server, Debian's chromium driven by Playwright.

The browser is Debian's ``chromium`` package (Playwright's own browser download is not used):
``make test`` installs it when it runs as root; otherwise a missing browser FAILS the browser
tests with the command to run, never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhelpers import CHROMIUM_FLAGS, chromium_path, serve_helpers, watch


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, smollm2_path: Path) -> Path:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("webstore")
    store = ModelStore(home)
    store.create("tiny", tiny_model_path)
    store.create("smollm2", smollm2_path, link=True)
    return home


@pytest.fixture(scope="session")
def web_server(web_home: Path) -> Iterator[Any]:
    """SmolLM2 on 4 slots of 1024 tokens, kept loaded."""
    server = serve_helpers().start_server(web_home, "--parallel", "4", "--ctx", "1024", "--keep-alive", "-1",
                                          "--preload", "smollm2")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(browser: Any, page_errors: list[str]) -> Iterator[Any]:
    """A new browser context and page; console errors and page errors are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    watch(opened, page_errors)
    try:
        yield opened
    finally:
        context.close()

