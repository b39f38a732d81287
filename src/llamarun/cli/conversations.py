"""Saved chat conversations: ``/save NAME`` and ``/load NAME`` of the ``run`` REPL.

Each is a JSON file ``<home>/conversations/NAME.json``.  Names are checked against a strict
pattern (no separators, no leading dot), files are written atomically inside that folder only,
and a file is validated when loaded (size, shape, roles, parameter values).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidNameError, InvalidParameterError

__all__ = ["Conversation", "conversation_path", "conversations_dir", "list_conversations",
           "load_conversation", "save_conversation"]

FORMAT = "llamarun.conversation"
VERSION = 1
MAX_BYTES = 16 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """What a session is: the model it talked to, its system prompt, messages and parameters."""

    model: str
    system: str | None = None
    messages: tuple[Mapping[str, str], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "model": self.model, "system": self.system,
                "options": dict(self.options), "messages": [dict(m) for m in self.messages]}


def conversations_dir() -> Path:
    from ..config import home_dir

    return home_dir() / "conversations"


def conversation_path(name: str) -> Path:
    """The file of conversation ``name``; InvalidNameError unless the name is safe."""
    stem = name.removesuffix(".json")
    if not _NAME.fullmatch(stem):
        raise InvalidNameError(
            f"invalid conversation name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit", field="name")
    return conversations_dir() / f"{stem}.json"


def list_conversations() -> list[str]:
    folder = conversations_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _NAME.fullmatch(p.stem))


def save_conversation(name: str, conversation: Conversation) -> Path:
    """Write ``conversation`` as ``name`` (replacing an older one atomically); returns the file."""
    path = conversation_path(name)
    if path.parent.is_symlink():
        raise InvalidParameterError(f"{path.parent} is a symbolic link; refusing to write through it", field="name")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(conversation.to_json(), indent=2, ensure_ascii=False).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=".save-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # replaces a symlink itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_conversation(name: str) -> Conversation:
    """Read and validate conversation ``name``; InvalidParameterError says what is wrong."""
    path = conversation_path(name)
    if not path.is_file():
        saved = ", ".join(list_conversations()) or "none yet"
        raise InvalidParameterError(f"no saved conversation {path.stem!r} (saved: {saved})", field="name")
    if path.stat().st_size > MAX_BYTES:
        raise InvalidParameterError(f"{path} is larger than {MAX_BYTES >> 20} MiB", field="name")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"{path} is not valid JSON: {exc}", field="name") from None
    return _parse(data, path)


def _parse(data: Any, path: Path) -> Conversation:
    from .chat_params import validate_options

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidParameterError(f"{path} is not a llamarun conversation file", field="name")
    system, options = data.get("system"), data.get("options") or {}
    if system is not None and not isinstance(system, str):
        raise InvalidParameterError(f"{path}: 'system' must be a string", field="system")
    if not isinstance(options, dict):
        raise InvalidParameterError(f"{path}: 'options' must be an object", field="options")
    try:
        validate_options(options)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path}: {exc}", field=exc.field) from None
    return Conversation(model=str(data.get("model") or ""), system=system,
                        messages=_messages(data.get("messages"), path), options=options)


def _messages(raw: Any, path: Path) -> tuple[dict[str, str], ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise InvalidParameterError(f"{path}: 'messages' must be a list", field="messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise InvalidParameterError(
                f"{path}: message {i} must be {{'role': system|user|assistant, 'content': text}}", field="messages")
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)
