"""The bridge's line protocol: how a command line is read and how a reply line is written.

A command is one line of UTF-8 ending in ``\\n`` (a ``\\r`` before it is dropped):
the command word (ASCII letters, any case), then, after spaces or tabs, its
argument. A text argument (a prompt, a system message, a grammar) is either

- bare text: everything after the spaces that follow the command word, to the
  end of the line, verbatim (inner and trailing spaces kept); or
- a JSON string, when the argument starts with ``"``: ``"line one\\nline two"``
  (newlines and any other character escaped as JSON escapes them); nothing but
  spaces may follow the closing quote.

A reply is one JSON object per line: ``{"status": "ok", "message": ..., "data": ...}``
or ``{"status": "error", "code": ..., "message": ..., "data": ...}``, ``code``
from :data:`llamarun.errors.ERROR_CODES` (the bridge column).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterError, LlamarunError
from ..serving import codes_of

__all__ = ["Command", "error_reply", "json_argument", "ok_reply", "parse_command", "text_argument"]

_BLANKS = " \t"


@dataclass(frozen=True)
class Command:
    """One parsed line: the command word (upper case) and the raw argument text."""

    name: str
    argument: str


def parse_command(line: bytes) -> Command | None:
    """The command of one line (without its ``\\n``); None for an empty line (no reply is sent)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\0" in line:
        raise InvalidParameterError("a NUL byte in the line: commands are UTF-8 text", field="line")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(f"the line is not valid UTF-8 (byte {exc.start})", field="line") from None
    if not text.strip(_BLANKS):
        return None
    head = text.lstrip(_BLANKS)
    cut = next((i for i, ch in enumerate(head) if ch in _BLANKS), len(head))
    word, rest = head[:cut], head[cut:].lstrip(_BLANKS)
    if not (word.isascii() and word.isalpha()):
        raise InvalidParameterError(f"unknown command {word[:40]!r}: send HELP for the list", field="command")
    return Command(word.upper(), rest)


def text_argument(argument: str, what: str, *, required: bool = True) -> str:
    """A text argument: a JSON string when it starts with ``"``, else the bare text."""
    if argument.startswith('"'):
        try:
            value, end = json.JSONDecoder().raw_decode(argument)
        except json.JSONDecodeError as exc:
            raise InvalidParameterError(f"{what}: not a valid JSON string ({exc.msg} at column {exc.pos + 1}); "
                                        "send bare text, or a JSON string for text with newlines",
                                        field=what) from None
        if not isinstance(value, str) or argument[end:].strip(_BLANKS):
            raise InvalidParameterError(f"{what}: after a JSON string nothing may follow on the line", field=what)
        argument = value
    if required and not argument:
        raise InvalidParameterError(f"{what} is missing", field=what)
    return argument


def json_argument(argument: str, what: str) -> Any:
    """An argument that must be one JSON value."""
    try:
        return json.loads(argument)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"{what}: not valid JSON ({exc.msg} at column {exc.pos + 1})",
                                    field=what) from None
    except RecursionError:
        raise InvalidParameterError(f"{what}: JSON nested too deeply", field=what) from None


def _encode(reply: dict[str, Any]) -> bytes:
    return (json.dumps(reply, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode(
        "utf-8", "replace")


def ok_reply(message: str, data: Any = None) -> bytes:
    return _encode({"status": "ok", "message": message, "data": data})


def error_reply(exc: BaseException) -> bytes:
    """An error line: the bridge code of ``exc`` and its message (internal errors say nothing more)."""
    codes = codes_of(exc)
    if isinstance(exc, LlamarunError):
        message = str(exc)
    elif codes.bridge == "cancelled":
        message = "the caller went away"
    else:
        message = "internal error (see the bridge's log)"
    field = getattr(exc, "field", None)
    return _encode({"status": "error", "code": codes.bridge, "message": message,
                    "data": {"field": field} if field else None})
