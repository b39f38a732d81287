"""Find the tool calls in a model's text, in the formats models actually write.

Recognised: Hermes/Qwen ``<tool_call>{json}</tool_call>`` (one or more),
Mistral ``[TOOL_CALLS][{...}, ...]`` (and ``[TOOL_CALLS]name[ARGS]{...}``),
Llama 3.1 ``<|python_tag|>{...}`` and plain JSON: one call object
``{"name": ..., "arguments"|"parameters": {...}}``, ``{"function": {...}}``,
``{"tool_calls": [...]}`` or an array of calls, optionally in a code fence or
after some text.  Arguments given as JSON text are decoded; a call whose
arguments are not a JSON object, or (when ``tools`` are given) whose name is
not a known tool, is not a call and stays in the content.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .tools import Tool

__all__ = ["ToolCall", "parse_tool_calls"]

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_MISTRAL_ARGS = re.compile(r"([A-Za-z0-9_.:-]+)\[ARGS\]")
_DECODER = json.JSONDecoder()


def _new_id() -> str:
    return f"call_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool: an id (for the tool result to refer to), a name, arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_new_id)

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_openai(self) -> dict[str, Any]:
        """``{"id", "type": "function", "function": {"name", "arguments": "<json text>"}}``"""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_json}}

    def to_ollama(self) -> dict[str, Any]:
        """``{"function": {"name", "arguments": {...}}}`` (Ollama sends arguments as an object)."""
        return {"function": {"name": self.name, "arguments": dict(self.arguments)}}


def _as_call(obj: Any, names: set[str] | None) -> ToolCall | None:
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("function"), Mapping):
        obj = obj["function"]
    name = obj.get("name")
    args: Any = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(name, str) or not isinstance(args, dict) or (names is not None and name not in names):
        return None
    if set(obj) - {"name", "arguments", "parameters", "id", "type"}:
        return None  # some other JSON object that happens to have a "name"
    return ToolCall(name=name, arguments=args)


def _as_calls(value: Any, names: set[str] | None) -> list[ToolCall] | None:
    """A JSON value holding one or more calls -> the calls, or None if it is not exactly that."""
    if isinstance(value, Mapping) and isinstance(value.get("tool_calls"), list) and len(value) == 1:
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item, names) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def _json_prefix(text: str) -> tuple[Any, str] | None:
    """Decode the JSON value at the start of ``text``; returns it and the rest."""
    try:
        value, end = _DECODER.raw_decode(text)
    except ValueError:
        return None
    return value, text[end:]


def _hermes(text: str, names: set[str] | None) -> tuple[str, list[ToolCall]] | None:
    if "<tool_call>" not in text:
        return None
    calls: list[ToolCall] = []
    for body in _HERMES.findall(text):
        fenced = _FENCE.match(body)
        decoded = _json_prefix(fenced.group(1) if fenced else body)
        found = _as_calls(decoded[0], names) if decoded and not decoded[1].strip() else None
        if found is None:
            return None
        calls += found
    return _HERMES.sub("", text).strip(), calls


def _mistral(text: str, names: set[str] | None) -> tuple[str, list[ToolCall]] | None:
    head, marker, tail = text.partition("[TOOL_CALLS]")
    if not marker:
        return None
    tail = tail.strip()
    decoded = _json_prefix(tail)
    if decoded is not None:
        found = _as_calls(decoded[0], names)
        return (head.strip(), found) if found else None
    calls = []  # newer form: name[ARGS]{...} repeated
    while tail:
        m = _MISTRAL_ARGS.match(tail)
        decoded = _json_prefix(tail[m.end():]) if m else None
        if not m or decoded is None or not isinstance(decoded[0], dict):
            return None
        call = _as_call({"name": m.group(1), "arguments": decoded[0]}, names)
        if call is None:
            return None
        calls.append(call)
        tail = decoded[1].lstrip().removeprefix("[TOOL_CALLS]").lstrip()
    return (head.strip(), calls) if calls else None


def _plain_json(text: str, names: set[str] | None) -> tuple[str, list[ToolCall]] | None:
    stripped = text.strip().removeprefix("<|python_tag|>").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)\s*```\s*$", stripped, re.S)
    if fenced:
        body, head = fenced.group(1), stripped[:fenced.start()]
    else:
        starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
        if not starts:
            return None
        head, body = stripped[:min(starts)], stripped[min(starts):]
    pieces = []  # Llama 3.1 may separate several calls with ";"
    while body:
        decoded = _json_prefix(body)
        if decoded is None:
            return None
        pieces.append(decoded[0])
        body = decoded[1].strip().removeprefix(";").strip()
    calls = [c for piece in pieces for c in (_as_calls(piece, names) or [None])]
    if not calls or any(c is None for c in calls):
        return None
    return head.strip(), calls  # type: ignore[return-value]


def parse_tool_calls(text: str, tools: Sequence[Tool] | None = None) -> tuple[str, tuple[ToolCall, ...]]:
    """Split ``text`` into (content, tool calls); no calls found -> (text, ())."""
    names = {t.name for t in tools} if tools else None
    for parser in (_hermes, _mistral, _plain_json):
        found = parser(text, names)
        if found is not None and found[1]:
            return found[0], tuple(found[1])
    return text, ()
