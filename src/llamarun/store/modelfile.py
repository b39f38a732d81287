"""Modelfiles (Ollama's format) and the defaults they give a stored model.

A Modelfile is a list of commands, one per line (case-insensitive, ``#``
starts a comment line)::

    FROM smollm2                 # a stored model name or a GGUF path
    PARAMETER temperature 0.2    # Ollama's parameter names; stop may repeat
    SYSTEM \"\"\"You are terse.\"\"\"   # values may be "quoted" or \"\"\"multi-line\"\"\"
    TEMPLATE chatml              # a llama.cpp built-in name, or a Jinja template
    MESSAGE user Hello           # example turns put before every conversation
    LICENSE "Apache-2.0"

What we cannot honour is refused with its line number: unknown commands or
parameters, ``ADAPTER``, Go templates (Ollama's own templates are Go
``text/template``; only Jinja and built-in names are supported here).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelfileError

__all__ = [
    "MAX_MODELFILE_CHARS",
    "PARAMETERS",
    "ModelDefaults",
    "Modelfile",
    "check_parameters",
    "check_template_text",
    "parse_modelfile",
]

MAX_MODELFILE_CHARS = 256 * 1024
MAX_MESSAGES = 256
MAX_STOPS = 16
_MAX_STOP_CHARS = 512
_ROLES = ("system", "user", "assistant")

# name -> (kind, lowest, highest)
PARAMETERS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.0, 100.0), "top_k": (int, 0, 1_000_000), "top_p": (float, 0.0, 1.0),
    "min_p": (float, 0.0, 1.0), "typical_p": (float, 0.0, 1.0), "repeat_penalty": (float, 0.0, 100.0),
    "repeat_last_n": (int, -1, 1 << 20), "presence_penalty": (float, -100.0, 100.0),
    "frequency_penalty": (float, -100.0, 100.0), "seed": (int, -(1 << 31), (1 << 63) - 1),
    "num_predict": (int, -2, 1 << 20), "num_ctx": (int, 16, 1 << 21), "num_keep": (int, -1, 1 << 21),
    "mirostat": (int, 0, 2), "mirostat_tau": (float, 0.0, 100.0), "mirostat_eta": (float, 0.0, 10.0),
    "num_batch": (int, 1, 1 << 16), "num_thread": (int, 0, 1024), "num_gpu": (int, -1, 100_000),
    "stop": (str, 0, 0),
}

# Go text/template actions ({{ .Prompt }}, {{ if .System }}, {{ range .Messages }}, {{ end }}, {{- ...)
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(?:\.|\$|(?:if|range|with|else|end|template|block|define)\b)")
_COMMANDS = ("from", "parameter", "system", "template", "message", "license", "adapter")


def check_template_text(text: str, *, line: int = 0) -> str:
    """Refuse a Go template (Ollama's own format) with a message that says what to write instead."""
    if _GO_TEMPLATE.search(text):
        raise ModelfileError(
            "TEMPLATE is a Go template (Ollama's format); llamarun supports only Jinja chat templates "
            "(as in a GGUF's tokenizer.chat_template) or a built-in name such as chatml or llama3",
            line=line, field="template")
    return text


def _number(name: str, value: Any, line: int) -> int | float:
    kind, low, high = PARAMETERS[name]
    if isinstance(value, str):
        try:
            value = int(value) if kind is int else float(value)
        except ValueError:
            raise ModelfileError(f"parameter {name} must be {'an integer' if kind is int else 'a number'}, "
                                 f"got {value[:80]!r}", line=line, field=name) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        if not (kind is int and isinstance(value, float) and value.is_integer()):
            raise ModelfileError(f"parameter {name} must be {'an integer' if kind is int else 'a number'}, "
                                 f"got {str(value)[:80]!r}", line=line, field=name)
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
        raise ModelfileError(f"parameter {name} must be between {low:g} and {high:g}, got {value!r}",
                             line=line, field=name)
    return kind(value)


def _stops(value: Any, line: int) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise ModelfileError("parameter stop must be a string or a list of strings", line=line, field="stop")
    if any(not s or len(s) > _MAX_STOP_CHARS for s in items):
        raise ModelfileError(f"a stop string must have 1 to {_MAX_STOP_CHARS} characters", line=line, field="stop")
    return list(items)


def check_parameters(values: Mapping[str, Any], *, line: int = 0,
                     into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ollama-named parameters, type- and range-checked (``stop`` accumulates); unknown names are refused."""
    out = into if into is not None else {}
    for name, value in values.items():
        if name not in PARAMETERS:
            raise ModelfileError(f"unknown parameter {str(name)[:60]!r}; known: {', '.join(sorted(PARAMETERS))}",
                                 line=line, field="parameters")
        if name == "stop":
            out["stop"] = [*out.get("stop", []), *_stops(value, line)]
            if len(out["stop"]) > MAX_STOPS:
                raise ModelfileError(f"at most {MAX_STOPS} stop strings", line=line, field="stop")
        else:
            out[name] = _number(name, value, line)
    return out


def _message(role: Any, content: Any, line: int = 0) -> dict[str, str]:
    if role not in _ROLES:
        raise ModelfileError(f"MESSAGE role must be one of {', '.join(_ROLES)}, got {str(role)[:40]!r}",
                             line=line, field="messages")
    if not isinstance(content, str):
        raise ModelfileError("MESSAGE content must be text", line=line, field="messages")
    return {"role": role, "content": content}


@dataclass(frozen=True)
class ModelDefaults:
    """What a Modelfile adds to a model: used whenever a request leaves a value out."""

    parameters: Mapping[str, Any] = field(default_factory=dict)  # Ollama names; "stop" is a list
    system: str | None = None
    template: str | None = None  # a built-in template name or Jinja
    messages: tuple[Mapping[str, str], ...] = ()
    license: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.parameters or self.system is not None or self.template or self.messages or self.license)

    @classmethod
    def build(cls, *, parameters: Mapping[str, Any] | None = None, system: str | None = None,
              template: str | None = None, messages: Any = None, license: Any = None) -> ModelDefaults:
        """Checked defaults from ``/api/create``-style fields (the same rules as a Modelfile)."""
        params = check_parameters(parameters or {})
        if template is not None:
            check_template_text(template)
        if messages is not None and (not isinstance(messages, (list, tuple)) or len(messages) > MAX_MESSAGES):
            raise ModelfileError(f"messages must be a list of at most {MAX_MESSAGES}", field="messages")
        msgs = tuple(_message(m.get("role"), m.get("content")) if isinstance(m, Mapping) else _message(None, None)
                     for m in messages or ())
        licenses = (license,) if isinstance(license, str) else tuple(license or ())
        texts = [t for t in (system, template, *licenses) if t is not None]
        if not all(isinstance(t, str) for t in texts) or sum(map(len, texts)) > MAX_MODELFILE_CHARS:
            raise ModelfileError(f"system, template and license must be text of at most {MAX_MODELFILE_CHARS} "
                                 "characters in all")
        return cls(params, system, template or None, msgs, licenses)

    def conversation(self, messages: Any) -> list[Any]:
        """``messages`` with the Modelfile's MESSAGE turns before them and its SYSTEM first, unless the
        conversation brings its own system message (as Ollama does)."""
        msgs = list(messages)
        own_system = any(isinstance(m, Mapping) and m.get("role") == "system" for m in msgs)
        head: list[Any] = [] if own_system or self.system is None else [{"role": "system", "content": self.system}]
        examples = [dict(m) for m in self.messages if not (own_system and m["role"] == "system")]
        if msgs and isinstance(msgs[0], Mapping) and msgs[0].get("role") == "system":
            return [msgs[0], *examples, *msgs[1:]]
        return [*head, *examples, *msgs]

    def over(self, base: ModelDefaults) -> ModelDefaults:
        """These defaults on top of a base model's: parameters merge, other given values replace."""
        params = {**base.parameters, **self.parameters}
        return ModelDefaults(params, self.system if self.system is not None else base.system,
                             self.template or base.template, self.messages or base.messages,
                             self.license or base.license)

    def to_manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"parameters": dict(self.parameters)}
        if self.system is not None:
            data["system"] = self.system
        if self.template:
            data["template"] = self.template
        if self.messages:
            data["messages"] = [dict(m) for m in self.messages]
        if self.license:
            data["license"] = list(self.license)
        return data

    @classmethod
    def from_manifest(cls, data: Any) -> ModelDefaults:
        if not isinstance(data, Mapping):
            return cls()
        return cls.build(parameters=data.get("parameters"), system=data.get("system"),
                         template=data.get("template"), messages=data.get("messages"), license=data.get("license"))

    def parameters_text(self) -> str:
        """Ollama's ``/api/show`` ``parameters``: one ``name value`` line each (stop once per string)."""
        lines = []
        for name, value in sorted(self.parameters.items()):
            for item in value if name == "stop" else [value]:
                lines.append(f"{name:<30} {_quote(item) if name == 'stop' else item}")
        return "\n".join(lines)

    def modelfile(self, from_: str) -> str:
        """The Modelfile text that makes this model (what ``show --modelfile`` prints)."""
        out = [f"FROM {from_}"]
        if self.template:
            out.append(f"TEMPLATE {_quote(self.template)}")
        if self.system is not None:
            out.append(f"SYSTEM {_quote(self.system)}")
        for name, value in sorted(self.parameters.items()):
            for item in value if name == "stop" else [value]:
                out.append(f"PARAMETER {name} {_quote(item) if name == 'stop' else item}")
        out.extend(f"MESSAGE {m['role']} {_quote(m['content'])}" for m in self.messages)
        out.extend(f"LICENSE {_quote(text)}" for text in self.license)
        return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    if '"""' not in text and "\n" in text and not text.endswith('"'):
        return f'"""{text}"""'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile: what it is built from and the defaults it adds."""

    from_: str
    defaults: ModelDefaults


def parse_modelfile(text: str) -> Modelfile:
    """Parse a Modelfile; every problem is a :class:`~llamarun.errors.ModelfileError` naming its line."""
    if not isinstance(text, str):
        raise ModelfileError("a Modelfile must be text")
    if len(text) > MAX_MODELFILE_CHARS:
        raise ModelfileError(f"the Modelfile has {len(text)} characters, more than the limit of {MAX_MODELFILE_CHARS}")
    if "\x00" in text:
        raise ModelfileError("the Modelfile contains a NUL character")
    state = _State()
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        i = _command(state, lines, i)
    if state.from_ is None:
        raise ModelfileError("the Modelfile has no FROM line (FROM <stored model name or GGUF path>)")
    defaults = ModelDefaults(state.parameters, state.system, state.template, tuple(state.messages),
                             tuple(state.license))
    return Modelfile(state.from_, defaults)


@dataclass
class _State:
    from_: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    license: list[str] = field(default_factory=list)


def _command(state: _State, lines: list[str], i: int) -> int:
    """Apply the command starting on line ``i``; returns the index of the next line."""
    number, stripped = i + 1, lines[i].strip()
    if not stripped or stripped.startswith("#"):
        return i + 1
    word, _, rest = stripped.partition(" ") if " " in stripped else stripped.partition("\t")
    command = word.lower()
    if command not in _COMMANDS:
        raise ModelfileError(f"unknown command {word[:40]!r}; expected one of "
                             f"{', '.join(c.upper() for c in _COMMANDS if c != 'adapter')}", line=number)
    if command == "adapter":
        raise ModelfileError("ADAPTER (LoRA adapters) is not supported", line=number, field="adapters")
    rest = rest.strip()
    if command in ("parameter", "message"):
        key, _, rest = rest.partition(" ") if " " in rest else rest.partition("\t")
        rest = rest.strip()
        if not key or not rest:
            raise ModelfileError(f"{command.upper()} needs a {'name' if command == 'parameter' else 'role'} "
                                 "and a value", line=number)
    value, nxt = _value(lines, i, rest)
    if not value and command in ("from", "parameter"):
        raise ModelfileError(f"{command.upper()} needs a value", line=number)
    _apply(state, command, key if command in ("parameter", "message") else "", value, number)
    return nxt


def _apply(state: _State, command: str, key: str, value: str, number: int) -> None:
    if command == "from":
        if state.from_ is not None:
            raise ModelfileError("a second FROM line (a Modelfile builds one model)", line=number)
        state.from_ = value
    elif command == "parameter":
        check_parameters({key.lower(): value}, line=number, into=state.parameters)
    elif command == "system":
        state.system = value
    elif command == "template":
        state.template = check_template_text(value, line=number) or None
    elif command == "message":
        if len(state.messages) >= MAX_MESSAGES:
            raise ModelfileError(f"more than {MAX_MESSAGES} MESSAGE lines", line=number)
        state.messages.append(_message(key.lower(), value, number))
    else:
        state.license.append(value)


def _value(lines: list[str], i: int, rest: str) -> tuple[str, int]:
    """A command's value: \"\"\"multi-line\"\"\", "quoted" (with \\" and \\\\ escapes) or the rest of the line."""
    if rest.startswith('"""'):
        body = rest[3:]
        end = body.find('"""')
        if end >= 0:
            _only_space_after(body[end + 3:], i + 1)
            return body[:end], i + 1
        parts = [body]
        for j in range(i + 1, len(lines)):
            end = lines[j].find('"""')
            if end >= 0:
                _only_space_after(lines[j][end + 3:], j + 1)
                parts.append(lines[j][:end])
                return "\n".join(parts), j + 1
            parts.append(lines[j])
        raise ModelfileError('unterminated """ (a multi-line value must end with """)', line=i + 1)
    if rest.startswith('"'):
        match = re.fullmatch(r'"((?:[^"\\]|\\.)*)"\s*', rest)
        if match is None:
            raise ModelfileError('unterminated or malformed "quoted" value', line=i + 1)
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), match.group(1)), i + 1
    return rest, i + 1


def _only_space_after(tail: str, number: int) -> None:
    if tail.strip():
        raise ModelfileError(f'unexpected text after the closing """: {tail.strip()[:40]!r}', line=number)
