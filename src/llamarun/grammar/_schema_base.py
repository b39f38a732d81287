"""The rule store shared by the JSON Schema -> GBNF converter's parts.

:class:`RuleSet` names and collects GBNF rules (identical bodies share one
rule) and adds llama.cpp's built-in JSON rules on demand; the converter's
mixins (scalars, containers, composition) build on it.  Also here: the helpers
they all use to read counts, quote JSON literals and report errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import GrammarError
from .gbnf import check_gbnf, gbnf_literal
from .limits import GrammarLimits

__all__ = ["PRIMITIVES", "RuleSet", "count_keyword", "fail", "literal_value"]

_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
# built-in rules: name -> (body, names of the rules the body refers to)
PRIMITIVES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "space": ('" "?', ()),
    "char": (_CHAR, ()),
    "string": ('"\\"" char* "\\"" space', ("char", "space")),
    "integral-part": ("[0] | [1-9] [0-9]{0,15}", ()),
    "number": ('"-"? integral-part ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? space', ("integral-part", "space")),
    "integer": ('"-"? integral-part space', ("integral-part", "space")),
    "boolean": ('("true" | "false") space', ("space",)),
    "null": ('"null" space', ("space",)),
    "value": ("object | array | string | number | boolean | null",
              ("object", "array", "string", "number", "boolean", "null")),
    "object": ('"{" space ( string ":" space value ( "," space string ":" space value )* )? "}" space',
               ("string", "value", "space")),
    "array": ('"[" space ( value ( "," space value )* )? "]" space', ("value", "space")),
}
_RULE_NAME = re.compile(r"[^a-zA-Z0-9-]+")


def fail(path: str, message: str) -> GrammarError:
    """The error for a problem at JSON pointer ``path`` of the schema."""
    return GrammarError(f"JSON schema error at {path or '/'}: {message}", field="schema")


def literal_value(value: Any) -> str:
    """GBNF literal matching exactly the JSON text of ``value``."""
    return gbnf_literal(json.dumps(value, ensure_ascii=False))


def count_keyword(schema: Mapping[str, Any], key: str, path: str, default: int | None) -> int | None:
    """``schema[key]`` checked to be a non-negative integer (``default`` when absent)."""
    value = schema.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{path}/{key}", "must be a non-negative integer")
    return value


class RuleSet:
    """Named GBNF rules of one grammar under construction, plus the converter's state."""

    def __init__(self, limits: GrammarLimits | None = None) -> None:
        self.limits = limits or GrammarLimits()
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._refs: dict[tuple[int, str], str] = {}
        self._doc: Any = None
        self._depth = 0

    def _fresh_name(self, hint: str) -> str:
        base = _RULE_NAME.sub("-", hint).strip("-")[:48] or "r"
        if base in PRIMITIVES or base == "root":
            base = f"{base}-"
        name, i = base, 1
        while name in self._rules:
            name, i = f"{base}{i}", i + 1
        return name

    def rule(self, hint: str, body: str) -> str:
        """Add ``hint ::= body`` (renamed if taken); identical bodies share one rule."""
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh_name(hint)
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def primitive(self, name: str) -> str:
        """Add a built-in rule (string, number, value, object ...) and what it needs."""
        pending = [name]
        while pending:
            current = pending.pop()
            if current not in self._rules:
                body, deps = PRIMITIVES[current]
                self._rules[current] = body
                pending.extend(deps)
        return name

    def build(self, root_body: str) -> str:
        """The whole grammar with ``root ::= root_body``; raises GrammarError if it breaks a limit."""
        lines = [f"root ::= {root_body}"] + [f"{name} ::= {body}" for name, body in self._rules.items()]
        grammar = "\n".join(lines) + "\n"
        check_gbnf(grammar, limits=self.limits)
        return grammar

    def _visit(self, schema: Any, hint: str, path: str) -> str:
        """The rule matching the sub-schema ``schema`` found at ``path``.

        Implemented by :class:`~llamarun.grammar.schema.GrammarBuilder`; the
        mixins call it to convert nested schemas.
        """
        raise NotImplementedError
