"""Chat messages from OpenAI and Ollama requests -> the plain dicts chat templates expect.

Templates follow Hugging Face conventions: ``content`` is a string, assistant
``tool_calls`` are ``{"id", "type": "function", "function": {"name",
"arguments": {...}}}`` with arguments as a mapping, tool results are
``{"role": "tool", "content", "tool_call_id", "name"}``.  Requests send
arguments as JSON text (OpenAI) or objects (Ollama), content as text or a list
of parts, ``tool_name`` (Ollama) or ``tool_call_id`` (OpenAI); all of these are
normalised here.  Templates that cannot show tool calls get them folded into
plain text (:func:`fold_tool_messages`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TemplateError

__all__ = ["fold_tool_messages", "merge_system_into_user", "normalize_messages", "prepend_system"]

_MAX_MESSAGES = 100_000


def _content_text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") in ("text", "input_text", "output_text"):
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise TemplateError(f"messages[{index}]: content of type {kind!r} is not supported "
                                    "(only text)", field="messages")
        return "\n".join(texts)
    raise TemplateError(f"messages[{index}].content must be a string or a list of text parts", field="messages")


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip() else {}
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return dict(value) if isinstance(value, Mapping) else value


def _tool_call(call: Any, index: int, position: int) -> dict[str, Any]:
    if hasattr(call, "name") and hasattr(call, "arguments"):  # our ToolCall
        call = {"id": getattr(call, "id", None), "function": {"name": call.name, "arguments": call.arguments}}
    if not isinstance(call, Mapping):
        raise TemplateError(f"messages[{index}].tool_calls[{position}] must be an object", field="messages")
    function = call.get("function", call)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise TemplateError(f"messages[{index}].tool_calls[{position}] needs function.name", field="messages")
    call_id = call.get("id") or f"call_{index}_{position}"
    return {"id": str(call_id), "type": "function",
            "function": {"name": function["name"], "arguments": _arguments(function.get("arguments", {}))}}


def normalize_messages(messages: Sequence[Mapping[str, Any]], *, short_ids: bool = False) -> list[dict[str, Any]]:
    """Copy ``messages`` into template-ready dicts (see the module docstring).

    ``short_ids`` rewrites tool-call ids to the 9 alphanumerics Mistral's
    templates demand, consistently between calls and results.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TemplateError("messages must be a list of {role, content} objects", field="messages")
    if len(messages) > _MAX_MESSAGES:
        raise TemplateError(f"more than {_MAX_MESSAGES} messages", field="messages")
    out: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TemplateError(f"messages[{i}] must be an object with role and content", field="messages")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise TemplateError(f"messages[{i}].role must be a non-empty string", field="messages")
        if message.get("images"):
            raise TemplateError(f"messages[{i}]: images are not supported by this model", field="messages")
        item: dict[str, Any] = {"role": role, "content": _content_text(message.get("content"), i)}
        thinking = message.get("thinking") or message.get("reasoning_content")
        if isinstance(thinking, str) and thinking:
            item["thinking"] = item["reasoning_content"] = thinking
        if message.get("tool_calls"):
            calls = [_tool_call(c, i, j) for j, c in enumerate(message["tool_calls"])]
            for call in calls:
                names_by_id[call["id"]] = call["function"]["name"]
            item["tool_calls"] = calls
        if role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("tool_name") or message.get("name") or names_by_id.get(str(call_id), "")
            item["name"] = item["tool_name"] = str(name)
            if call_id is not None:
                item["tool_call_id"] = str(call_id)
        elif isinstance(message.get("name"), str):
            item["name"] = message["name"]
        out.append(item)
    return _shorten_ids(out) if short_ids else out


def _short_id(call_id: str) -> str:
    if len(call_id) == 9 and call_id.isalnum():
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()
    return "".join(c for c in digest if c.isalnum())[:9]


def _shorten_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for message in messages:
        for call in message.get("tool_calls", ()):
            call["id"] = _short_id(call["id"])
        if "tool_call_id" in message:
            message["tool_call_id"] = _short_id(message["tool_call_id"])
    return messages


def _calls_text(calls: list[dict[str, Any]]) -> str:
    objs = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls]
    return json.dumps(objs[0] if len(objs) == 1 else objs, ensure_ascii=False)


def fold_tool_messages(messages: list[dict[str, Any]], *, calls: bool = True, results: bool = True,
                       system_text: str = "") -> list[dict[str, Any]]:
    """For templates that cannot show tool turns: with ``calls``, assistant tool calls
    become JSON text in the content; with ``results``, tool results become user
    messages (consecutive ones merged, so user/assistant turns still alternate);
    ``system_text`` (tool descriptions) goes into the system message."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if calls and message.get("tool_calls"):
            text = _calls_text(message["tool_calls"])
            content = f"{message['content']}\n{text}" if message["content"] else text
            message = {k: v for k, v in message.items() if k != "tool_calls"} | {"content": content}
        if results and message["role"] == "tool":
            name = message.get("name") or "the tool"
            text = f"Result of {name}:\n{message['content']}"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n\n" + text
                continue
            message = {"role": "user", "content": text, "_tool_results": True}
        out.append(message)
    for message in out:
        message.pop("_tool_results", None)
    return prepend_system(out, system_text)


def prepend_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Add ``text`` to the system message (after its own text), creating one if needed."""
    if not text:
        return messages
    if messages and messages[0]["role"] == "system":
        return [messages[0] | {"content": f"{messages[0]['content']}\n\n{text}".strip()}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def merge_system_into_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For templates that refuse a system role: its text goes before the first user message."""
    systems = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not systems:
        return messages
    text = "\n\n".join(s for s in systems if s)
    for i, message in enumerate(rest):
        if message["role"] == "user":
            rest[i] = message | {"content": f"{text}\n\n{message['content']}" if text else message["content"]}
            return rest
    return [{"role": "user", "content": text}, *rest]
