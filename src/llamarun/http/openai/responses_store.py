"""Stored responses for ``previous_response_id``, ``GET`` and ``DELETE /v1/responses/{id}``.

One SQLite file in the model store's home (``<home>/responses/responses.sqlite3``), bounded by
count and age: the oldest rows go first. Each row keeps a response, the input items of its own
turn and its predecessor's id; a conversation is read back by walking that chain. The store also
knows the responses being generated now (``live``), so that ``cancel`` can stop one.

Blocking: call its methods on a thread pool (each opens its own connection).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidParameterError, StoreError

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_COUNT", "ResponseStore", "StoredResponse"]

DEFAULT_MAX_COUNT = 1000
DEFAULT_MAX_AGE = 30 * 86400.0  # OpenAI keeps responses 30 days
MAX_CHAIN = 1000  # previous_response_id links followed

_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, created REAL NOT NULL, previous TEXT, response TEXT NOT NULL, items TEXT NOT NULL)"""


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]  # the Response object as answered
    items: list[dict[str, Any]]  # the input items of this turn alone
    previous: str | None


class ResponseStore:
    """Bounded storage of responses (``path`` None: nothing can be stored)."""

    def __init__(self, path: Path | None, *, max_count: int = DEFAULT_MAX_COUNT,
                 max_age: float = DEFAULT_MAX_AGE) -> None:
        if max_count < 1 or max_age <= 0:
            raise InvalidParameterError("a response store keeps at least one response for some time")
        self.path, self.max_count, self.max_age = path, max_count, max_age
        self.live: dict[str, Callable[[], None]] = {}  # id -> cancel, while it is being generated

    @classmethod
    def in_home(cls, root: Path | None, **limits: Any) -> ResponseStore:
        return cls(Path(root) / "responses" / "responses.sqlite3" if root is not None else None, **limits)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.path is None:
            raise StoreError("this server has no store home for responses: send store=false")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the response store {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            yield db
        except sqlite3.Error as exc:
            raise StoreError(f"the response store failed: {exc}") from None
        finally:
            db.close()

    def put(self, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep ``response`` (replacing one of the same id), then drop what is over the limits."""
        row = (response["id"], time.time(), response.get("previous_response_id"), json.dumps(response),
               json.dumps(items))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", row)
            db.execute("DELETE FROM responses WHERE created < ?", (time.time() - self.max_age,))
            db.execute("DELETE FROM responses WHERE id NOT IN "
                       "(SELECT id FROM responses ORDER BY created DESC LIMIT ?)", (self.max_count,))
            db.execute("COMMIT")

    def _row(self, db: sqlite3.Connection, response_id: str) -> StoredResponse | None:
        found = db.execute("SELECT response, items, previous FROM responses WHERE id = ? AND created >= ?",
                           (response_id, time.time() - self.max_age)).fetchone()
        if found is None:
            return None
        return StoredResponse(json.loads(found[0]), json.loads(found[1]), found[2])

    def get(self, response_id: str) -> StoredResponse | None:
        with self._connect() as db:
            return self._row(db, response_id)

    def delete(self, response_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def conversation(self, response_id: str) -> list[dict[str, Any]]:
        """The items of the conversation up to and including ``response_id``'s output, oldest first."""
        turns: list[list[dict[str, Any]]] = []
        with self._connect() as db:
            current: str | None = response_id
            while current is not None:
                stored = self._row(db, current)
                if stored is None:
                    what = "no stored response" if current == response_id else f"its earlier response {current!r} " \
                        "is no longer stored (responses are kept for a limited time and number)"
                    raise InvalidParameterError(f"previous_response_id {response_id[:80]!r}: {what}",
                                                field="previous_response_id")
                turns.append(stored.items + stored.response.get("output", []))
                if len(turns) > MAX_CHAIN:
                    raise InvalidParameterError(f"previous_response_id: a conversation of more than {MAX_CHAIN} "
                                                "responses", field="previous_response_id")
                current = stored.previous
        return [item for turn in reversed(turns) for item in turn]
