"""Helpers of the web page tests: starting servers, Debian's chromium, screenshots."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL = "sudo apt-get install -y chromium"


def serve_helpers() -> Any:
    """tests/http/serve_helpers.py (that folder is not a package)."""
    if "serve_helpers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("serve_helpers", ROOT / "tests" / "http" / "serve_helpers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["serve_helpers"] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["serve_helpers"]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(f"Debian's chromium is not installed: run `{INSTALL}` "
                    "(`make test` installs it when run as root)")
    return found


def watch(page: Any, errors: list[str]) -> None:
    """Collect the page's console errors and uncaught exceptions into ``errors``."""
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))


def screenshot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save a PNG under build/screenshots/ (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path


# -- driving the chat page -----------------------------------------------------------------

def open_chat(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#model", "smollm2:latest")


def set_max_tokens(page: Any, n: int) -> None:
    if page.is_hidden("#settings"):
        page.click("#settings-open")
    page.fill("#max_tokens", str(n))
    page.dispatch_event("#max_tokens", "change")
    page.click("#settings-open")


def wait_until(page: Any, predicate: str, timeout_s: float = 60) -> None:
    """Poll a JS function in the page (page.wait_for_function compiles it with eval, which the CSP refuses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)


def last_answer(page: Any) -> Any:
    return page.locator("article.assistant").last


def wait_answer_done(page: Any, timeout_s: float = 120) -> None:
    page.wait_for_selector("#stop", state="hidden", timeout=timeout_s * 1000)
    page.wait_for_selector("article.streaming", state="detached", timeout=timeout_s * 1000)
