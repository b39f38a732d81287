"""Accepting a JSON schema document: parse JSON text, bound its size and depth.

Everything here runs before the converter walks the schema, so a hostile
document (huge, or nested deeply enough to blow Python's recursion) is refused
with a :class:`GrammarError` instead of being parsed or walked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import GrammarError
from .limits import GrammarLimits

__all__ = ["check_schema_size", "load_schema"]


def load_schema(schema: Any, limits: GrammarLimits | None = None) -> Any:
    """Accept a schema as a mapping, a bool or JSON text; check its size; return plain data."""
    limits = limits or GrammarLimits()
    if isinstance(schema, (str, bytes)):
        if len(schema) > limits.max_schema_bytes:
            raise GrammarError(f"JSON schema of {len(schema)} bytes is larger than the limit of "
                               f"{limits.max_schema_bytes}", field="schema")
        check_schema_size(_json_depth_scan(schema, limits), limits)
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise GrammarError(f"JSON schema is not valid JSON: {exc}", field="schema") from None
    if not isinstance(schema, (Mapping, bool)):
        raise GrammarError(f"a JSON schema must be an object or a boolean, got {type(schema).__name__}",
                           field="schema")
    check_schema_size(schema, limits)
    return schema


def _json_depth_scan(text: str | bytes, limits: GrammarLimits) -> Any:
    """Reject JSON text nested too deeply before json.loads recurses into it; returns ``{}``."""
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    depth = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limits.max_schema_depth:
                raise GrammarError(f"JSON schema nested deeper than {limits.max_schema_depth} levels",
                                   field="schema")
        elif ch in "]}":
            depth -= 1
    return {}


def check_schema_size(schema: Any, limits: GrammarLimits | None = None) -> None:
    """Raise :class:`GrammarError` if a schema document is too deep or too large (no recursion)."""
    limits = limits or GrammarLimits()
    stack: list[tuple[Any, int]] = [(schema, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_schema_nodes:
            raise GrammarError(f"JSON schema has more than {limits.max_schema_nodes} values", field="schema")
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > limits.max_schema_depth:
            raise GrammarError(f"JSON schema nested deeper than {limits.max_schema_depth} levels", field="schema")
        stack.extend((child, depth + 1) for child in children)
    size = len(json.dumps(schema, default=str))
    if size > limits.max_schema_bytes:
        raise GrammarError(f"JSON schema of {size} bytes is larger than the limit of {limits.max_schema_bytes}",
                           field="schema")
