"""Chat conversations of the web page, kept in SQLite in the store's home (``conversations.db``).

One row per conversation: its id, title, times and the whole conversation as JSON (the page's
message tree: every branch an edit or a regeneration made stays). The shape is checked by
:class:`Conversation` before anything is written; search looks at titles and message text.
Every call opens its own connection (they are short, and called from a thread pool).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import ConversationNotFoundError, InvalidParameterError

__all__ = ["Conversation", "ConversationStore", "ConversationSummary", "StoredMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    doc TEXT NOT NULL
)
"""
MAX_CONVERSATIONS = 10_000
_TEXT = 1 << 22  # characters of one message


class StoredMessage(BaseModel):
    """One message of the tree: ``parent`` is the message it answers or follows (None: the first)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    parent: str | None = Field(None, max_length=64)
    role: Literal["user", "assistant"]
    content: str = Field("", max_length=_TEXT)
    thinking: str = Field("", max_length=_TEXT)
    model: str = Field("", max_length=300)
    stats: dict[str, float | int | str | None] = Field(default_factory=dict, max_length=32)
    created: float = 0.0


class Conversation(BaseModel):
    """A whole conversation as the page keeps it; ``current`` is the last message of the branch shown."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    title: str = Field("New chat", max_length=200)
    model: str = Field("", max_length=300)
    system: str = Field("", max_length=_TEXT)
    settings: dict[str, Any] = Field(default_factory=dict, max_length=64)
    messages: list[StoredMessage] = Field(default_factory=list, max_length=10_000)
    current: str | None = Field(None, max_length=64)
    created: float = 0.0
    updated: float = 0.0

    def checked(self) -> Conversation:
        """Every parent and ``current`` names a message of this conversation, and ids are unique."""
        ids = {m.id for m in self.messages}
        if len(ids) != len(self.messages):
            raise InvalidParameterError("message ids must be unique", field="messages")
        for m in self.messages:
            if m.parent is not None and m.parent not in ids:
                raise InvalidParameterError(f"message {m.id} follows {m.parent!r}, which is not in the conversation",
                                            field="messages")
        if self.current is not None and self.current not in ids:
            raise InvalidParameterError("current must name a message of the conversation", field="current")
        return self


class ConversationSummary(BaseModel):
    id: str
    title: str
    created: float
    updated: float


class ConversationStore:
    """The conversations file of one store home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute(_SCHEMA)
            with db:  # one transaction: committed on success, rolled back on an error
                yield db
        finally:
            db.close()

    def list(self, query: str = "", limit: int = 200) -> list[ConversationSummary]:
        """Newest first; ``query`` (case-insensitive) must appear in the title or a message."""
        sql = "SELECT id, title, created, updated FROM conversations"
        args: list[Any] = []
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += " WHERE title LIKE ? ESCAPE '\\' OR doc LIKE ? ESCAPE '\\'"
            args += [pattern, pattern]
        sql += " ORDER BY updated DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(sql, [*args, max(1, min(limit, MAX_CONVERSATIONS))]).fetchall()
        return [ConversationSummary(id=r[0], title=r[1], created=r[2], updated=r[3]) for r in rows]

    def get(self, conversation_id: str) -> Conversation:
        with self._db() as db:
            row = db.execute("SELECT doc FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFoundError(f"no conversation {conversation_id[:64]!r}")
        return Conversation.model_validate(json.loads(row[0]))

    def save(self, conversation: Conversation, *, new: bool = False) -> Conversation:
        """Write ``conversation`` (a new id when it has none or ``new``); returns what was stored."""
        conversation.checked()
        now = time.time()
        changes: dict[str, Any] = {"updated": now}
        if new or not conversation.id:
            changes.update(id=secrets.token_urlsafe(12), created=conversation.created or now)
        elif not conversation.created:
            changes["created"] = now
        stored = conversation.model_copy(update=changes)
        with self._db() as db:
            exists = db.execute("SELECT 1 FROM conversations WHERE id = ?", (stored.id,)).fetchone()
            if exists is None:
                (count,) = db.execute("SELECT COUNT(*) FROM conversations").fetchone()
                if count >= MAX_CONVERSATIONS:
                    raise InvalidParameterError(f"at most {MAX_CONVERSATIONS} conversations are kept; delete some",
                                                field="id")
            db.execute("INSERT INTO conversations (id, title, created, updated, doc) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated = excluded.updated, "
                       "doc = excluded.doc",
                       (stored.id, stored.title, stored.created, stored.updated, stored.model_dump_json()))
        return stored

    def rename(self, conversation_id: str, title: str) -> Conversation:
        conversation = self.get(conversation_id)
        return self.save(Conversation.model_validate({**conversation.model_dump(), "title": title}))

    def delete(self, conversation_id: str) -> None:
        with self._db() as db:
            if db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 0:
                raise ConversationNotFoundError(f"no conversation {conversation_id[:64]!r}")

    def export(self) -> list[Conversation]:
        with self._db() as db:
            rows = db.execute("SELECT doc FROM conversations ORDER BY updated DESC").fetchall()
        return [Conversation.model_validate(json.loads(r[0])) for r in rows]
