"""Anthropic's request vocabulary -> the chat messages, tools and choices the serving layer takes.

Blocks are read one by one; one this server cannot take (images, documents, server
tools' results, redacted thinking) is a 400 naming it (``messages.1.content.0.type``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameterError, UnsupportedFeatureError
from .schemas import Message

__all__ = ["ChatInput", "chat_input", "response_format", "think_of", "tool_choice_of", "tools_of"]


@dataclass(frozen=True)
class ChatInput:
    """The conversation as chat messages, and assistant text the answer continues (a prefill)."""

    messages: list[dict[str, Any]]
    prefill: str = ""


def _text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidParameterError(f"{where}.text must be a string", field=f"{where}.text")
    return text


def _kind(block: Any, where: str) -> str:
    if not isinstance(block, Mapping):
        raise InvalidParameterError(f"{where} must be a content block object", field=where)
    kind = block.get("type")
    if not isinstance(kind, str):
        raise InvalidParameterError(f"{where}.type is required", field=f"{where}.type")
    return kind


def _unsupported(kind: str, where: str, allowed: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(f"{where}.type: content blocks of type {kind[:40]!r} are not supported "
                                   f"here ({allowed})", field=f"{where}.type")


def system_text(system: str | Sequence[Any] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    parts = []
    for i, block in enumerate(system):
        where = f"system.{i}"
        kind = _kind(block, where)
        if kind != "text":
            raise _unsupported(kind, where, "text only")
        parts.append(_text(block, where))
    return "\n\n".join(parts)


def _tool_result(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidParameterError(f"{where}.tool_use_id is required", field=f"{where}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = _kind(part, f"{where}.content.{j}")
            if kind != "text":
                raise _unsupported(kind, f"{where}.content.{j}", "text only")
            texts.append(_text(part, f"{where}.content.{j}"))
        content = "\n".join(texts)
    elif not isinstance(content, str):
        raise InvalidParameterError(f"{where}.content must be a string or text blocks", field=f"{where}.content")
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _user(content: list[Any], where: str) -> list[dict[str, Any]]:
    """Tool results become tool messages (in order), the text one user message after them."""
    out, texts = [], []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = _kind(block, at)
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_result":
            out.append(_tool_result(block, at))
        else:
            raise _unsupported(kind, at, "text and tool_result in user turns")
    if texts or not out:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def _tool_use(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    name, call_id, args = block.get("name"), block.get("id"), block.get("input", {})
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"{where}.name is required", field=f"{where}.name")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidParameterError(f"{where}.id is required", field=f"{where}.id")
    if not isinstance(args, Mapping):
        raise InvalidParameterError(f"{where}.input must be an object", field=f"{where}.input")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": dict(args)}}


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts, thinking, calls = [], [], []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = _kind(block, at)
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "thinking":
            value = block.get("thinking")
            if not isinstance(value, str):
                raise InvalidParameterError(f"{at}.thinking must be a string", field=f"{at}.thinking")
            thinking.append(value)
        elif kind == "tool_use":
            calls.append(_tool_use(block, at))
        else:
            raise _unsupported(kind, at, "text, thinking and tool_use in assistant turns")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if thinking:
        message["thinking"] = "\n".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def chat_input(system: str | Sequence[Any] | None, messages: Sequence[Message]) -> ChatInput:
    """The chat messages of a request; a last assistant turn of text only is the prefill."""
    out: list[dict[str, Any]] = []
    text = system_text(system)
    if text:
        out.append({"role": "system", "content": text})
    prefill = ""
    for i, message in enumerate(messages):
        where = f"messages.{i}.content"
        blocks = [{"type": "text", "text": message.content}] if isinstance(message.content, str) else message.content
        if message.role == "user":
            out.extend(_user(blocks, where))
            continue
        turn = _assistant(blocks, where)
        if i == len(messages) - 1 and not turn.get("tool_calls") and not turn.get("thinking"):
            prefill = turn["content"].rstrip()  # the API refuses trailing whitespace there; be lenient
            break
        out.append(turn)
    if not any(m["role"] in ("user", "tool") for m in out):
        raise InvalidParameterError("messages: the conversation needs a user turn", field="messages")
    return ChatInput(out, prefill)


def tools_of(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Client tools as function tools; Anthropic's server tools (web search, bash, computer use,
    code execution ...) are refused by name."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise UnsupportedFeatureError(f"tools.{i}.type: the server tool {str(kind)[:60]!r} is not supported "
                                          "(only client tools with an input_schema)", field=f"tools.{i}.type")
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(f"tools.{i}.name is required", field=f"tools.{i}.name")
        if not isinstance(schema, Mapping):
            raise InvalidParameterError(f"tools.{i}.input_schema must be a JSON schema object",
                                        field=f"tools.{i}.input_schema")
        function = {"name": name, "parameters": dict(schema)}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def tool_choice_of(choice: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """(OpenAI-style tool_choice, parallel calls allowed)."""
    if choice is None:
        return None, True
    kind = choice.get("type")
    parallel = not choice.get("disable_parallel_tool_use", False)
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise InvalidParameterError("tool_choice.type must be 'auto', 'any', 'tool' or 'none'", field="tool_choice.type")


def think_of(thinking: Mapping[str, Any] | None, max_tokens: int | None) -> tuple[bool | None, bool]:
    """(think, show the thinking text) from ``thinking``; a budget must stay below ``max_tokens`` as
    Anthropic's API requires (thinking counts toward max_tokens, which bounds it)."""
    if thinking is None:
        return None, True
    kind = thinking.get("type")
    display = thinking.get("display") or "summarized"
    if display not in ("summarized", "omitted"):
        raise InvalidParameterError("thinking.display must be 'summarized' or 'omitted'", field="thinking.display")
    if kind == "disabled":
        return False, True
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise InvalidParameterError("thinking.budget_tokens must be an integer of at least 1024",
                                        field="thinking.budget_tokens")
        if max_tokens is not None and budget >= max_tokens:
            raise InvalidParameterError("max_tokens must be greater than thinking.budget_tokens",
                                        field="thinking.budget_tokens")
    elif kind != "adaptive":
        raise InvalidParameterError("thinking.type must be 'enabled', 'adaptive' or 'disabled'",
                                    field="thinking.type")
    return True, display == "summarized"


def response_format(output_config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``output_config.format`` (a JSON schema) as a response format; ``effort`` is refused."""
    if not output_config:
        return None
    if output_config.get("effort") is not None:
        raise UnsupportedFeatureError("output_config.effort is not supported by this server",
                                      field="output_config.effort")
    fmt = output_config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), Mapping):
        raise InvalidParameterError("output_config.format must be {'type': 'json_schema', 'schema': {...}}",
                                    field="output_config.format")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(fmt["schema"])}}


def tool_input_json(arguments: Mapping[str, Any]) -> str:
    return json.dumps(dict(arguments), ensure_ascii=False)
