"""A Responses API request -> what the chat layer takes: messages, tools, tool choice, output format.

Input items llamarun reads: ``message`` (text parts), ``function_call``, ``function_call_output``
and ``reasoning`` (the next assistant turn's thinking). Anything else (images, files, built-in
tools' calls, item references) is a 400 naming the item. Only ``function`` tools run here: built-in
tools (web search, file search, computer use, code interpreter ...) are a 400 naming them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InvalidParameterError, UnsupportedFeatureError
from .fields import refuse_unhonoured, think_of_effort
from .responses_schemas import UNHONOURED, ResponseCreateRequest
from .schemas import SamplingFields

__all__ = ["chat_format", "chat_tool_choice", "chat_tools", "check_request", "input_items", "input_messages",
           "sampling_body", "think_of"]

_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def check_request(body: ResponseCreateRequest) -> None:
    """400 for what this server cannot honour (named), before any model is acquired."""
    refuse_unhonoured(body, UNHONOURED)
    if body.include:
        raise UnsupportedFeatureError(f"include {body.include[0][:60]!r} is not supported", field="include")
    if body.truncation == "auto":
        raise UnsupportedFeatureError('truncation "auto" is not supported: the prompt must fit the context',
                                      field="truncation")
    if body.top_logprobs:
        raise UnsupportedFeatureError("top_logprobs is not supported on /v1/responses", field="top_logprobs")
    if body.input is None and body.previous_response_id is None:
        raise InvalidParameterError("input: field required", field="input")
    verbosity = (body.text or {}).get("verbosity")
    if verbosity not in (None, "medium"):
        raise UnsupportedFeatureError(f"text.verbosity {str(verbosity)[:20]!r} is not supported",
                                      field="text.verbosity")


def input_items(value: str | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's ``input`` as items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [dict(item) for item in value]


def _text_of(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidParameterError(f"{where}.content must be a string or a list of parts", field=f"{where}.content")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(part["refusal"])
        else:
            raise UnsupportedFeatureError(f"{where}.content[{j}] of type {str(kind)[:40]!r} is not supported "
                                          "(text parts only)", field=f"{where}.content[{j}].type")
    return "".join(parts)


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidParameterError(f"{where}.role must be user, assistant, system or developer",
                                    field=f"{where}.role")
    return {"role": role, "content": _text_of(item.get("content"), where)}


def _string(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise InvalidParameterError(f"{where}.{key} must be a non-empty string", field=f"{where}.{key}")
    return value


def _function_call(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    arguments = item.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where), "arguments": arguments}}


def _call_output(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    output = item.get("output")
    text = output if isinstance(output, str) else _text_of(output, where)
    return {"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": text}


def _reasoning(item: Mapping[str, Any]) -> str:
    parts = item.get("content") or item.get("summary") or []
    return "".join(p.get("text", "") for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str))


def input_messages(items: Sequence[Mapping[str, Any]], instructions: str | None = None, *,
                   offset: int = 0) -> list[dict[str, Any]]:
    """Chat messages of a conversation's items (function calls join the assistant turn they follow);
    ``offset``: how many of them came from earlier responses (errors name the request's own index)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    thinking = ""
    for i, item in enumerate(items):
        where, kind = f"input[{i - offset}]", item.get("type", "message")
        last = messages[-1] if messages else None
        if kind == "message":
            message = _message(item, where)
            if message["role"] == "assistant" and thinking:
                message["thinking"], thinking = thinking, ""
            messages.append(message)
        elif kind == "function_call":
            call = _function_call(item, where)
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": ""}
                if thinking:
                    last["thinking"], thinking = thinking, ""
                messages.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
        elif kind == "reasoning":
            thinking += _reasoning(item)
        else:
            raise UnsupportedFeatureError(f"{where}: items of type {str(kind)[:40]!r} are not supported (message, "
                                          "function_call, function_call_output, reasoning)", field=f"{where}.type")
    return messages


def chat_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools in the chat shape; built-in tools are refused by name."""
    out = []
    for i, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if kind != "function":
            raise UnsupportedFeatureError(f"tools[{i}]: {str(kind)[:40]!r} tools are not supported: built-in tools "
                                          "(web_search, file_search, computer_use, code_interpreter, mcp ...) run on "
                                          "OpenAI's servers; use function tools", field=f"tools[{i}].type")
        function = {"name": _string(tool, "name", f"tools[{i}]"), "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        out.append({"type": "function", "function": function})
    return out or None


def chat_tool_choice(choice: str | Mapping[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise UnsupportedFeatureError(f"tool_choice of type {str(choice.get('type'))[:40]!r} is not supported "
                                  "(none, auto, required or a function)", field="tool_choice")


def chat_format(text: Mapping[str, Any] | None) -> Any:
    """``text.format`` as a chat ``response_format``."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), Mapping):
            raise InvalidParameterError("text.format.schema must be a JSON schema object", field="text.format.schema")
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name") or "output", "schema": fmt["schema"]}}
    raise UnsupportedFeatureError(f"text.format of type {str(kind)[:40]!r} is not supported "
                                  "(text, json_object, json_schema)", field="text.format.type")


def think_of(reasoning: Mapping[str, Any] | None) -> bool | None:
    effort = (reasoning or {}).get("effort")
    try:
        return think_of_effort(effort)
    except InvalidParameterError as exc:
        raise InvalidParameterError(str(exc), field="reasoning.effort") from None


def sampling_body(body: ResponseCreateRequest) -> SamplingFields:
    """The sampling part of the request in the chat completions' vocabulary (shared code from there on)."""
    return SamplingFields(
        model=body.model, max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p,
        stream=body.stream, stop=body.stop, seed=body.seed, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, top_k=body.top_k, min_p=body.min_p, typical_p=body.typical_p,
        repeat_penalty=body.repeat_penalty, ignore_eos=body.ignore_eos, timeout=body.timeout,
        keep_alive=body.keep_alive)
