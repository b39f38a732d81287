"""JSON Schema -> GBNF, within limits, with errors that name the problem.

Why our own converter: llama-cpp-python 0.3.36 ships one (``llama_grammar.
SchemaConverter``), but it reports errors with ``assert`` (silently skipped
under ``python -O``), recurses without bounds, can fetch remote ``$ref``s over
the network, and has no numeric bounds; llama.cpp's better C++ converter is in
``common/``, which the shared library does not export.  This module follows the
same approach (one GBNF rule per schema node, required properties first,
optional ones in order) and adds limits, typed errors, integer and decimal
bounds and regex patterns.

The converter is split by concern: :mod:`._schema_load` (parsing, size and
depth limits), :mod:`._schema_base` (the rule store), :mod:`._schema_scalars`,
:mod:`._schema_containers` and :mod:`._schema_compose` (rules per kind of
schema node); this module dispatches each node and is the public entry point.

Supported: ``type`` (or a list of types), ``enum``, ``const``, ``properties`` /
``required`` / ``additionalProperties``, ``items`` / ``prefixItems`` /
``minItems`` / ``maxItems``, ``minLength`` / ``maxLength``, ``pattern``,
``format`` (date, time, date-time, uuid, email, ipv4, uri), ``minimum`` /
``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum``, ``$ref`` into the same
document (``$defs`` / ``definitions``, recursion allowed), ``anyOf`` / ``oneOf``
(exclusivity not enforced), ``allOf`` (merged), ``nullable``.
Assertions that cannot be expressed (``not``, ``if``, ``patternProperties``,
``contains`` ...) raise :class:`GrammarError`; ``uniqueItems`` is not enforced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import GrammarError
from ._schema_base import fail, literal_value
from ._schema_compose import CompositionRules
from ._schema_containers import ContainerRules
from ._schema_load import check_schema_size, load_schema
from ._schema_scalars import ScalarRules
from .limits import GrammarLimits

__all__ = ["GrammarBuilder", "check_schema_size", "json_schema_to_gbnf", "load_schema"]

_UNSUPPORTED = ("not", "if", "then", "else", "patternProperties", "dependentRequired", "dependentSchemas",
                "dependencies", "propertyNames", "contains", "minContains", "maxContains",
                "unevaluatedProperties", "unevaluatedItems")
_TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")


def _infer_type(schema: Mapping[str, Any]) -> str | None:
    if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("pattern", "minLength", "maxLength", "format")):
        return "string"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return None


class GrammarBuilder(CompositionRules, ContainerRules, ScalarRules):
    """Collects GBNF rules from JSON schemas and hand-written bodies into one grammar.

    ``add_schema`` returns the name of the rule matching a schema; several
    schemas may share one builder (a tool-call grammar has one per tool).
    ``build(root_body)`` returns the grammar text, checked by :func:`check_gbnf`.
    ``rule``, ``primitive`` and ``build`` come from
    :class:`~llamarun.grammar._schema_base.RuleSet`.
    """

    def add_schema(self, schema: Any, hint: str = "schema") -> str:
        """Convert ``schema`` (mapping, bool or JSON text) and return its rule's name."""
        schema = load_schema(schema, self.limits)
        previous, self._doc = self._doc, schema
        try:
            return self._visit(schema, hint, "")
        except RecursionError:
            raise GrammarError("JSON schema nests too deeply to convert", field="schema") from None
        finally:
            self._doc = previous

    def _visit(self, schema: Any, hint: str, path: str) -> str:
        self._depth += 1
        try:
            if self._depth > self.limits.max_schema_depth:
                raise fail(path, f"schema nested (through $ref) deeper than {self.limits.max_schema_depth} levels")
            if schema is True:
                return self.primitive("value")
            if schema is False:
                raise fail(path, "the schema `false` admits no value")
            if not isinstance(schema, Mapping):
                raise fail(path, f"a schema must be an object or a boolean, got {type(schema).__name__}")
            return self._dispatch(schema, hint, path)
        finally:
            self._depth -= 1

    def _dispatch(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        for key in _UNSUPPORTED:
            if key in schema:
                raise fail(f"{path}/{key}", f"the keyword {key!r} is not supported for constrained output")
        if "$ref" in schema:
            return self._ref(schema["$ref"], hint, path)
        if "allOf" in schema:
            return self._visit(self._all_of(schema, path), hint, path)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._any_of(schema, key, hint, path)
        if schema.get("nullable") is True:
            rest = {k: v for k, v in schema.items() if k != "nullable"}
            return self._any_of({"anyOf": [rest, {"type": "null"}]}, "anyOf", hint, path)
        if "const" in schema:
            self.primitive("space")
            return self.rule(hint, f"{literal_value(schema['const'])} space")
        if "enum" in schema:
            return self._enum(schema["enum"], hint, path)
        kind = schema.get("type", _infer_type(schema))
        if isinstance(kind, list):
            if not kind:
                raise fail(f"{path}/type", "an empty list of types admits no value")
            alts = [{**schema, "type": t} for t in kind]
            return self._any_of({"anyOf": alts}, "anyOf", hint, path)
        if kind is None:
            return self.primitive("value")
        if kind not in _TYPES:
            raise fail(f"{path}/type", f"unknown type {kind!r} (expected one of {', '.join(_TYPES)})")
        return getattr(self, f"_{kind}")(schema, hint, path)


def json_schema_to_gbnf(schema: Any, *, limits: GrammarLimits | None = None) -> str:
    """A GBNF grammar whose every sentence is a JSON value valid against ``schema``.

    ``schema`` is a mapping, a boolean or JSON text.  Raises :class:`GrammarError`
    (HTTP 400) naming the problem when the schema is invalid, too large, too deep
    or uses a keyword that cannot be enforced.
    """
    builder = GrammarBuilder(limits)
    return builder.build(builder.add_schema(schema, "schema"))
