"""The page on a server with an API key (asked once, kept), and the conversation list: search,
rename, delete, export and import through the page (tiny model, no generation needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from webhelpers import serve_helpers, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

KEY = "page-key-0123456789"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Any:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("keyed")
    ModelStore(home).create("tiny", tiny_model_path)
    server = serve_helpers().start_server(home, "--parallel", "1", "--ctx", "256", "--api-key", KEY)
    try:
        yield server
    finally:
        server.stop()


def _seed(server: Any, *titles: str) -> list[str]:
    auth = {"Authorization": f"Bearer {KEY}"}
    return [httpx.post(f"{server.url}/web/conversations", headers=auth, timeout=30,
                       json={"title": t, "messages": [{"id": "u", "role": "user", "content": f"about {t}"}],
                             "current": "u"}).json()["id"] for t in titles]


def test_the_page_asks_for_the_key_once(keyed_server: Any, page: Any, page_errors: list[str]) -> None:
    page.goto(keyed_server.url + "/")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#model option").all_inner_texts() == ["tiny:latest"]
    page.reload()  # kept in this browser: not asked again
    page.wait_for_selector("body[data-ready=true]")
    assert not page.locator("#key-dialog[open]").count()
    # the page's 401s before the key was given are the only console errors
    assert all("401" in e for e in page_errors), page_errors


def test_search_rename_delete_export_import(keyed_server: Any, page: Any, tmp_path: Path) -> None:
    page.add_init_script(f"localStorage.setItem('llamarun.apiKey', {json.dumps(KEY)})")
    apples, _ = _seed(keyed_server, "Apples", "Pears")
    page.goto(keyed_server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#search", "apple")
    wait_until(page, "() => document.querySelectorAll('#conversations li').length === 1")
    page.click(f"#conversations li[data-id='{apples}'] .rename")
    page.fill("#conversations .rename-box", "Green apples")
    page.press("#conversations .rename-box", "Enter")
    wait_until(page, "() => document.querySelector('#conversations li .open')?.textContent === 'Green apples'")
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert {c["title"] for c in exported["conversations"]} >= {"Green apples", "Pears"}
    page.click(f"#conversations li[data-id='{apples}'] .delete")
    page.click(f"#conversations li[data-id='{apples}'] .confirm-delete")
    wait_until(page, "() => document.querySelectorAll('#conversations li').length === 0")
    dump = tmp_path / "back.json"
    dump.write_text(json.dumps({"conversations": [c for c in exported["conversations"] if c["id"] == apples]}))
    page.set_input_files("#import-file", str(dump))
    wait_until(page, "() => document.querySelectorAll('#conversations li').length === 1")  # search still 'apple'
    page.click("#conversations li .open")
    page.wait_for_selector("article.user")
    assert page.locator("article.user").inner_text().startswith("about Apples")
