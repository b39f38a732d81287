"""The bounded store of /v1/responses (a real SQLite file): count and age limits, chains."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llamarun.errors import InvalidParameterError, StoreError
from llamarun.http.openai.responses_store import ResponseStore


def _response(rid: str, previous: str | None = None) -> dict:
    return {"id": rid, "previous_response_id": previous, "output": [{"type": "message", "id": f"m{rid}"}]}


def test_count_limit_drops_the_oldest(tmp_path: Path) -> None:
    store = ResponseStore.in_home(tmp_path, max_count=3)
    for i in range(5):
        store.put(_response(f"r{i}"), [{"i": i}])
        time.sleep(0.01)
    assert [store.get(f"r{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert (tmp_path / "responses" / "responses.sqlite3").is_file()


def test_age_limit(tmp_path: Path) -> None:
    store = ResponseStore.in_home(tmp_path, max_age=0.2)
    store.put(_response("old"), [])
    assert store.get("old") is not None
    time.sleep(0.3)
    assert store.get("old") is None  # expired even before the next write prunes it
    store.put(_response("new"), [])
    assert store.get("new") is not None and not store.delete("old")


def test_conversation_walks_the_chain(tmp_path: Path) -> None:
    store = ResponseStore.in_home(tmp_path)
    store.put(_response("a"), [{"turn": 1}])
    store.put(_response("b", "a"), [{"turn": 2}])
    items = store.conversation("b")
    assert items == [{"turn": 1}, {"type": "message", "id": "ma"}, {"turn": 2}, {"type": "message", "id": "mb"}]
    assert store.delete("a")
    with pytest.raises(InvalidParameterError, match="no longer stored") as info:
        store.conversation("b")
    assert info.value.field == "previous_response_id"
    with pytest.raises(InvalidParameterError, match="no stored response"):
        store.conversation("zzz")


def test_no_home_refuses(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        ResponseStore(None).put(_response("a"), [])
    with pytest.raises(InvalidParameterError):
        ResponseStore(tmp_path / "x.db", max_count=0)
