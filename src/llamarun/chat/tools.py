"""Tool definitions, tool choice, the default tools prompt and the forcing grammar."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidParameterError
from ..grammar import GrammarBuilder, GrammarLimits, check_schema_size, gbnf_literal

__all__ = ["Tool", "ToolCallFormat", "ToolChoice", "parse_tools", "tool_call_grammar", "tools_system_prompt"]

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_TOOLS = 128


@dataclass(frozen=True)
class Tool:
    """A function the model may call: name, description, JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        """OpenAI/Ollama shape, as chat templates expect it."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], *, index: int = 0) -> Tool:
        """From ``{"type": "function", "function": {...}}`` or a bare ``{"name", ...}``."""
        if not isinstance(spec, Mapping):
            raise InvalidParameterError(f"tools[{index}] must be an object", field="tools")
        if spec.get("type", "function") != "function":
            raise InvalidParameterError(f"tools[{index}]: only type 'function' is supported", field="tools")
        function = spec.get("function", spec)
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidParameterError(f"tools[{index}]: function name must match {_NAME.pattern}", field="tools")
        params = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, Mapping):
            raise InvalidParameterError(f"tools[{index}]: parameters must be a JSON schema object", field="tools")
        check_schema_size(params)
        description = function.get("description") or ""
        return cls(name=name, description=str(description), parameters=params)


def parse_tools(tools: Sequence[Mapping[str, Any] | Tool] | None) -> tuple[Tool, ...]:
    """Validate a request's ``tools`` list; names must be unique."""
    if not tools:
        return ()
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise InvalidParameterError("tools must be a list", field="tools")
    if len(tools) > _MAX_TOOLS:
        raise InvalidParameterError(f"more than {_MAX_TOOLS} tools", field="tools")
    parsed = tuple(t if isinstance(t, Tool) else Tool.from_dict(t, index=i) for i, t in enumerate(tools))
    names = [t.name for t in parsed]
    if len(set(names)) != len(names):
        raise InvalidParameterError("tool names must be unique", field="tools")
    return parsed


@dataclass(frozen=True)
class ToolChoice:
    """``auto`` (model decides), ``none``, ``required`` (some call) or ``function`` (that one)."""

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None

    @property
    def forces_call(self) -> bool:
        return self.mode in ("required", "function")

    @classmethod
    def parse(cls, value: Any, tools: Sequence[Tool]) -> ToolChoice:
        """From OpenAI's ``tool_choice`` (``None`` means auto with tools, none without)."""
        if value is None:
            return cls("auto" if tools else "none")
        if value in ("auto", "none", "required"):
            if value == "required" and not tools:
                raise InvalidParameterError("tool_choice 'required' needs tools", field="tool_choice")
            return cls(value)
        if isinstance(value, Mapping):
            function = value.get("function", value)
            name = function.get("name") if isinstance(function, Mapping) else None
            if name not in {t.name for t in tools}:
                raise InvalidParameterError(f"tool_choice names {name!r}, which is not among the tools",
                                            field="tool_choice")
            return cls("function", name)
        raise InvalidParameterError("tool_choice must be 'auto', 'none', 'required' or "
                                    "{'type': 'function', 'function': {'name': ...}}", field="tool_choice")


class ToolCallFormat(str, enum.Enum):
    """How a model writes tool calls (detected from its template)."""

    JSON = "json"  # {"name": ..., "arguments": {...}} (our default prompt)
    HERMES = "hermes"  # <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen, Hermes)
    LLAMA3 = "llama3"  # {"name": ..., "parameters": {...}} (Llama 3.1+)
    MISTRAL = "mistral"  # [TOOL_CALLS][{"name": ..., "arguments": {...}}]

    @classmethod
    def detect(cls, template_source: str | None) -> ToolCallFormat:
        source = template_source or ""
        if "<tool_call>" in source:
            return cls.HERMES
        if "[TOOL_CALLS]" in source:
            return cls.MISTRAL
        if "<|start_header_id|>" in source and '"parameters"' in source:
            return cls.LLAMA3
        return cls.JSON


def tools_system_prompt(tools: Sequence[Tool]) -> str:
    """Tool descriptions for templates that cannot show tools themselves."""
    lines = ["You can call the following tools. Each is described by a JSON object with its name, "
             "its description and a JSON Schema of its arguments:"]
    lines += [json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                         ensure_ascii=False) for t in tools]
    lines.append('To call a tool, reply with only a JSON object {"name": <tool name>, "arguments": '
                 "<arguments object>} (or a JSON array of such objects to call several tools). "
                 "After a tool's result arrives, answer the user. If no tool is needed, answer directly.")
    return "\n".join(lines)


def tool_call_grammar(tools: Sequence[Tool], choice: ToolChoice, fmt: ToolCallFormat = ToolCallFormat.JSON, *,
                      parallel: bool = False, limits: GrammarLimits | None = None) -> str:
    """GBNF forcing output to be exactly a call (or, with ``parallel``, one or more
    calls) of ``choice``'s tool(s), with arguments valid against their schemas."""
    chosen = [t for t in tools if choice.mode != "function" or t.name == choice.name]
    if not chosen:
        raise InvalidParameterError("tool_choice selects no tool", field="tool_choice")
    builder = GrammarBuilder(limits)
    space = builder.primitive("space")
    key = "parameters" if fmt is ToolCallFormat.LLAMA3 else "arguments"
    calls = []
    for i, tool in enumerate(chosen):
        args = builder.add_schema(dict(tool.parameters), f"args-{i}-{tool.name}")
        calls.append(builder.rule(f"call-{i}", f'"{{" {space} {gbnf_literal(json.dumps("name"))} {space} ":" {space} '
                                  f'{gbnf_literal(json.dumps(tool.name))} {space} "," {space} '
                                  f'{gbnf_literal(json.dumps(key))} {space} ":" {space} {args} "}}" {space}'))
    call = builder.rule("call", " | ".join(calls))
    if fmt is ToolCallFormat.HERMES:
        one = builder.rule("tagged-call", f'"<tool_call>" "\\n"? {call} "\\n"? "</tool_call>"')
        return builder.build(f'{one} ( "\\n" {one} )*' if parallel else one)
    many = f'"[" {space} {call} ( "," {space} {call} )* "]" {space}'
    if fmt is ToolCallFormat.MISTRAL:
        return builder.build(f'"[TOOL_CALLS]" ({many})' if parallel else f'"[TOOL_CALLS]" "[" {call} "]"')
    return builder.build(f"{call} | {many}" if parallel else call)
