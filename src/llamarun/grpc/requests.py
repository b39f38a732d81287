"""llamarun.v1 requests -> the serving layer's terms: options, chat messages, tools, constraints.

Sampling fields are validated by building :class:`llamarun.serving.Options` (Ollama's names, the
same ranges as every frontend); a field we cannot honour is refused with the field's name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidParameterError
from ..serving import Options
from .v1 import llamarun_pb2 as pb

__all__ = ["Constraint", "chat_messages", "chat_tools", "constraint_of", "keep_alive_of", "logit_bias_of",
           "options_of", "require_model"]

_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
                    "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "seed",
                    "num_keep")
_LOAD_FIELDS = ("num_ctx", "num_batch", "num_thread", "num_gpu")
_PROTO_NAMES = {"num_predict": "max_tokens"}


def require_model(name: str) -> str:
    if not name:
        raise InvalidParameterError("model is required", field="model")
    return name


def _value(message: Any, name: str) -> Any:
    value = getattr(message, name)
    if isinstance(value, float):  # float32 on the wire: 0.7 arrives as 0.699999988
        return float(f"{value:.7g}")
    return value


def _options(values: dict[str, Any], prefix: str) -> Options:
    try:
        return Options(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        field = f"{prefix}{_PROTO_NAMES.get(name, name)}" if name else prefix.rstrip(".")
        raise InvalidParameterError(f"{field}: {error['msg']}", field=field) from None


def options_of(req: pb.GenerateRequest) -> Options:
    """The request's sampling, length, stop and load settings as :class:`Options`."""
    if req.HasField("max_tokens") and req.max_tokens < 0:
        raise InvalidParameterError(f"max_tokens must not be negative, got {req.max_tokens}", field="max_tokens")
    values: dict[str, Any] = {n: _value(req.sampling, n) for n in _SAMPLING_FIELDS if req.sampling.HasField(n)}
    values.update({n: getattr(req.load, n) for n in _LOAD_FIELDS if req.load.HasField(n)})
    if req.HasField("max_tokens"):
        values["num_predict"] = req.max_tokens
    if req.stop:
        values["stop"] = list(req.stop)
    if req.sampling.ignore_eos:
        values["ignore_eos"] = True
    if any(math.isnan(v) or math.isinf(v) for v in values.values() if isinstance(v, float)):
        raise InvalidParameterError("sampling values must be finite numbers", field="sampling")
    return _options(values, "sampling.")


def load_options_of(load: pb.LoadOptions) -> Options:
    return _options({n: getattr(load, n) for n in _LOAD_FIELDS if load.HasField(n)}, "load.")


def logit_bias_of(sampling: pb.SamplingParams) -> dict[int, float]:
    bias = dict(sampling.logit_bias)
    for token, value in bias.items():
        if token < 0 or not math.isfinite(value) or not -100 <= value <= 100:
            raise InvalidParameterError(f"logit_bias: token {token} must be >= 0 with a bias in -100..100",
                                        field="sampling.logit_bias")
    return bias


def keep_alive_of(message: Any) -> float | None:
    """``keep_alive_s`` (unset: the server's default; negative: forever)."""
    if not message.HasField("keep_alive_s"):
        return None
    value = message.keep_alive_s
    if math.isnan(value):
        raise InvalidParameterError("keep_alive_s must be a number", field="keep_alive_s")
    return -1.0 if value < 0 else value


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidParameterError(f"{field} is not valid JSON", field=field) from None
    if not isinstance(value, dict):
        raise InvalidParameterError(f"{field} must be a JSON object", field=field)
    return value


@dataclass(frozen=True)
class Constraint:
    """The output constraint: a response format (Ollama ``format``: "json" or a schema) or a GBNF grammar."""

    format: str | Mapping[str, Any] | None = None
    grammar: str | None = None


def constraint_of(req: pb.GenerateRequest) -> Constraint:
    which = req.WhichOneof("constraint")
    if which == "json_schema":
        return Constraint(format=_json_object(req.json_schema, "json_schema"))
    if which == "grammar":
        if not req.grammar.strip():
            raise InvalidParameterError("grammar is empty", field="grammar")
        return Constraint(grammar=req.grammar)
    if which == "json_object" and req.json_object:
        return Constraint(format="json")
    return Constraint()


def _call(call: pb.ToolCall, where: str) -> dict[str, Any]:
    arguments = _json_object(call.arguments_json or "{}", f"{where}.arguments_json")
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def chat_messages(chat: pb.ChatInput) -> list[dict[str, Any]]:
    """Chat messages as the chat templates take them (OpenAI/Ollama shapes)."""
    messages = []
    for i, m in enumerate(chat.messages):
        if not m.role:
            raise InvalidParameterError(f"chat.messages[{i}].role is required", field=f"chat.messages[{i}].role")
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.thinking:
            message["thinking"] = m.thinking
        if m.tool_calls:
            message["tool_calls"] = [_call(c, f"chat.messages[{i}].tool_calls[{j}]")
                                     for j, c in enumerate(m.tool_calls)]
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        if m.name:
            message["name"] = m.name
        messages.append(message)
    return messages


def chat_tools(chat: pb.ChatInput) -> list[dict[str, Any]] | None:
    tools = []
    for i, t in enumerate(chat.tools):
        schema = (_json_object(t.parameters_json_schema, f"chat.tools[{i}].parameters_json_schema")
                  if t.parameters_json_schema else {"type": "object", "properties": {}})
        tools.append({"type": "function", "function": {"name": t.name, "description": t.description,
                                                       "parameters": schema}})
    return tools or None
