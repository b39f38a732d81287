"""JSON Schema -> GBNF, within limits, with errors that name the problem.

Why our own converter: llama-cpp-python 0.3.36 ships one (``llama_grammar.
SchemaConverter``), but it reports errors with ``assert`` (silently skipped
under ``python -O``), recurses without bounds, can fetch remote ``$ref``s over
the network, and has no numeric bounds; llama.cpp's better C++ converter is in
``common/``, which the shared library does not export.  This module follows the
same approach (one GBNF rule per schema node, required properties first,
optional ones in order) and adds limits, typed errors, integer and decimal
bounds and regex patterns.

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

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ..errors import GrammarError
from . import _numbers
from ._regex import pattern_to_gbnf
from .gbnf import check_gbnf, gbnf_literal
from .limits import GrammarLimits

__all__ = ["GrammarBuilder", "check_schema_size", "json_schema_to_gbnf", "load_schema"]

logger = logging.getLogger(__name__)

_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_PRIMITIVES: dict[str, tuple[str, tuple[str, ...]]] = {
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
_DATE = '[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )'
_TIME = ('( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
         '( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )')
_FORMATS = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f'{_DATE} "T" {_TIME}',
    "uuid": ' "-" '.join(f"[0-9a-f]{{{n}}}" for n in (8, 4, 4, 4, 12)),
    "email": '[a-zA-Z0-9._+-]{1,64} "@" [a-zA-Z0-9-]{1,63} ( "." [a-zA-Z0-9-]{1,63} )* "." [a-zA-Z]{2,24}',
    "ipv4": ' "." '.join(['( "25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9]? [0-9] )'] * 4),
    "uri": '[a-zA-Z] [a-zA-Z0-9+.-]{0,15} ":" [a-zA-Z0-9/?#@!$&()*+,;=:._~%-]{1,200}',
}
_UNSUPPORTED = ("not", "if", "then", "else", "patternProperties", "dependentRequired", "dependentSchemas",
                "dependencies", "propertyNames", "contains", "minContains", "maxContains",
                "unevaluatedProperties", "unevaluatedItems")
_TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
_RULE_NAME = re.compile(r"[^a-zA-Z0-9-]+")


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


def _fail(path: str, message: str) -> GrammarError:
    return GrammarError(f"JSON schema error at {path or '/'}: {message}", field="schema")


def _literal_value(value: Any) -> str:
    return gbnf_literal(json.dumps(value, ensure_ascii=False))


def _count(schema: Mapping[str, Any], key: str, path: str, default: int | None) -> int | None:
    value = schema.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{path}/{key}", "must be a non-negative integer")
    return value


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge for allOf / anyOf siblings: properties united, required joined."""
    out = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        elif key == "required" and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        else:
            out[key] = value
    return out


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


class GrammarBuilder:
    """Collects GBNF rules from JSON schemas and hand-written bodies into one grammar.

    ``add_schema`` returns the name of the rule matching a schema; several
    schemas may share one builder (a tool-call grammar has one per tool).
    ``build(root_body)`` returns the grammar text, checked by :func:`check_gbnf`.
    """

    def __init__(self, limits: GrammarLimits | None = None) -> None:
        self.limits = limits or GrammarLimits()
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._refs: dict[tuple[int, str], str] = {}
        self._doc: Any = None
        self._depth = 0

    # -- rules ---------------------------------------------------------------

    def _fresh_name(self, hint: str) -> str:
        base = _RULE_NAME.sub("-", hint).strip("-")[:48] or "r"
        if base in _PRIMITIVES or base == "root":
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
                body, deps = _PRIMITIVES[current]
                self._rules[current] = body
                pending.extend(deps)
        return name

    def build(self, root_body: str) -> str:
        """The whole grammar with ``root ::= root_body``; raises GrammarError if it breaks a limit."""
        lines = [f"root ::= {root_body}"] + [f"{name} ::= {body}" for name, body in self._rules.items()]
        grammar = "\n".join(lines) + "\n"
        check_gbnf(grammar, limits=self.limits)
        return grammar

    # -- schemas -------------------------------------------------------------

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
                raise _fail(path, f"schema nested (through $ref) deeper than {self.limits.max_schema_depth} levels")
            if schema is True:
                return self.primitive("value")
            if schema is False:
                raise _fail(path, "the schema `false` admits no value")
            if not isinstance(schema, Mapping):
                raise _fail(path, f"a schema must be an object or a boolean, got {type(schema).__name__}")
            return self._dispatch(schema, hint, path)
        finally:
            self._depth -= 1

    def _dispatch(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        for key in _UNSUPPORTED:
            if key in schema:
                raise _fail(f"{path}/{key}", f"the keyword {key!r} is not supported for constrained output")
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
            return self.rule(hint, f"{_literal_value(schema['const'])} space")
        if "enum" in schema:
            return self._enum(schema["enum"], hint, path)
        kind = schema.get("type", _infer_type(schema))
        if isinstance(kind, list):
            if not kind:
                raise _fail(f"{path}/type", "an empty list of types admits no value")
            alts = [{**schema, "type": t} for t in kind]
            return self._any_of({"anyOf": alts}, "anyOf", hint, path)
        if kind is None:
            return self.primitive("value")
        if kind not in _TYPES:
            raise _fail(f"{path}/type", f"unknown type {kind!r} (expected one of {', '.join(_TYPES)})")
        return getattr(self, f"_{kind}")(schema, hint, path)

    def _ref(self, ref: Any, hint: str, path: str) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _fail(f"{path}/$ref", f"only local references ('#/...') are supported, got {ref!r}")
        key = (id(self._doc), ref)
        if key in self._refs:
            return self._refs[key]
        target = self._doc
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise _fail(f"{path}/$ref", f"reference {ref!r} does not resolve in this schema")
        name = self._fresh_name(ref.rsplit("/", 1)[-1] or "ref")
        self._rules[name] = '""'  # placeholder so recursive references find the name
        self._refs[key] = name
        self._rules[name] = self._visit(target, f"{name}-body", ref[1:])
        return name

    def _all_of(self, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise _fail(f"{path}/allOf", "must be a non-empty list of schemas")
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for i, part in enumerate(parts):
            if part is True:
                continue
            if not isinstance(part, Mapping):
                raise _fail(f"{path}/allOf/{i}", "must be a schema object")
            if "$ref" in part and len(part) == 1:
                part = self._resolve_plain(part["$ref"], f"{path}/allOf/{i}")
            merged = _merge(merged, part)
        return merged

    def _resolve_plain(self, ref: Any, path: str) -> Mapping[str, Any]:
        target = self._doc
        if isinstance(ref, str) and ref.startswith("#"):
            for part in ref[1:].split("/")[1:]:
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if isinstance(target, Mapping):
                return target
        raise _fail(path, f"reference {ref!r} does not resolve to a schema object")

    def _any_of(self, schema: Mapping[str, Any], key: str, hint: str, path: str) -> str:
        alts = schema[key]
        if not isinstance(alts, list) or not alts:
            raise _fail(f"{path}/{key}", "must be a non-empty list of schemas")
        siblings = {k: v for k, v in schema.items() if k not in (key, "anyOf", "oneOf", "title", "description")}
        names = []
        for i, alt in enumerate(alts):
            if siblings and isinstance(alt, Mapping):
                alt = _merge(siblings, alt)
            names.append(self._visit(alt, f"{hint}-{i}", f"{path}/{key}/{i}"))
        return self.rule(hint, " | ".join(dict.fromkeys(names)))

    def _enum(self, values: Any, hint: str, path: str) -> str:
        if not isinstance(values, list) or not values:
            raise _fail(f"{path}/enum", "must be a non-empty list")
        self.primitive("space")
        alts = " | ".join(dict.fromkeys(_literal_value(v) for v in values))
        return self.rule(hint, f"({alts}) space")

    # -- types ---------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(props, Mapping):
            raise _fail(f"{path}/properties", "must be an object mapping names to schemas")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _fail(f"{path}/required", "must be a list of property names")
        extra = schema.get("additionalProperties")
        if not props and not required and extra in (None, True):
            return self.primitive("object")
        names = list(dict.fromkeys([*[r for r in required], *props]))
        n_required = len(set(required))
        minimum = _count(schema, "minProperties", path, 0) or 0
        maximum = _count(schema, "maxProperties", path, None)
        if minimum > n_required or (maximum is not None and (maximum < len(names) or extra not in (None, False))):
            raise _fail(path, "minProperties/maxProperties are only supported when implied by the properties")
        self.primitive("space")
        kvs = {}
        for key in names:
            value = self._visit(props.get(key, True), f"{hint}-{key}", f"{path}/properties/{key}")
            kvs[key] = self.rule(f"{hint}-{key}-kv", f'{_literal_value(str(key))} space ":" space {value}')
        extra_kv = None
        if extra not in (None, False):
            value = self._visit(extra, f"{hint}-additional", f"{path}/additionalProperties")
            extra_kv = self.rule(f"{hint}-additional-kv", f'{self.primitive("string")} ":" space {value}')
        req = [kvs[k] for k in names if k in required]
        opt = [kvs[k] for k in names if k not in required]
        return self.rule(hint, self._object_body(req, opt, extra_kv, hint))

    def _object_body(self, req: list[str], opt: list[str], extra_kv: str | None, hint: str) -> str:
        tail = "".join(f' ( "," space {kv} )?' for kv in opt)
        more = f' ( "," space {extra_kv} )*' if extra_kv else ""
        if req:
            return '"{" space ' + ' "," space '.join(req) + tail + more + ' "}" space'
        # no required property: whichever optional one comes first has no comma before it
        firsts = []
        for i, kv in enumerate(opt):
            rest = "".join(f' ( "," space {k} )?' for k in opt[i + 1:]) + more
            firsts.append(f"{kv}{self._tail(rest, hint)}")
        if extra_kv:
            firsts.append(f"{extra_kv}{more}")
        return '"{" space ( ' + " | ".join(firsts) + ' )? "}" space' if firsts else '"{" space "}" space'

    def _tail(self, rest: str, hint: str) -> str:
        return f" {self.rule(f'{hint}-rest', rest.strip())}" if rest else ""

    def _array(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        items = schema.get("items", True)
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # draft 4 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        lo = _count(schema, "minItems", path, 0) or 0
        hi = _count(schema, "maxItems", path, None)
        if hi is not None and hi < lo:
            raise _fail(path, f"maxItems {hi} is below minItems {lo}")
        if lo > self.limits.max_repetition:
            raise _fail(f"{path}/minItems", f"{lo} is more than the limit of {self.limits.max_repetition}")
        self.primitive("space")
        if prefix is not None:
            return self._tuple(prefix, items, lo, hint, path)
        if hi == 0 or items is False:
            if lo > 0:
                raise _fail(path, "minItems cannot be met when no item is allowed")
            return self.rule(hint, '"[" space "]" space')
        item = self._visit(items, f"{hint}-item", f"{path}/items")
        return self.rule(hint, f'"[" space {self._repeat(item, lo, hi)} "]" space')

    def _repeat(self, item: str, lo: int, hi: int | None) -> str:
        """``item`` lo..hi times, comma separated (GBNF repetition on a rule reference)."""
        if hi is not None and hi > self.limits.max_repetition:
            hi = None
        if lo == 0:
            if hi == 1:
                return f"{item}?"
            more = "*" if hi is None else f"{{0,{hi - 1}}}"
            return f'( {item} ( "," space {item} ){more} )?'
        more = f"{{{lo - 1},}}" if hi is None else (f"{{{lo - 1}}}" if hi == lo else f"{{{lo - 1},{hi - 1}}}")
        return f'{item} ( "," space {item} ){more}' if (lo, hi) != (1, 1) else item

    def _tuple(self, prefix: Any, items: Any, lo: int, hint: str, path: str) -> str:
        if not isinstance(prefix, list):
            raise _fail(f"{path}/prefixItems", "must be a list of schemas")
        names = [self._visit(s, f"{hint}-{i}", f"{path}/prefixItems/{i}") for i, s in enumerate(prefix)]
        if lo > len(names):
            if items is False:
                raise _fail(path, "minItems cannot be met with the listed prefixItems")
            extra = self._visit(items, f"{hint}-item", f"{path}/items")
            names += [extra] * (lo - len(names))
        body = ' "," space '.join(names)
        return self.rule(hint, f'"[" space {body} "]" space' if names else '"[" space "]" space')

    def _string(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        self.primitive("space")
        if "pattern" in schema:
            body = pattern_to_gbnf(schema["pattern"], self.limits)
            return self.rule(hint, f'"\\"" {self.rule(f"{hint}-pattern", body)} "\\"" space')
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return self.rule(hint, f'"\\"" {self.rule(str(fmt), _FORMATS[fmt])} "\\"" space')
        if fmt is not None:
            logger.debug("JSON schema format %r is not enforced", fmt)
        lo = _count(schema, "minLength", path, 0) or 0
        hi = _count(schema, "maxLength", path, None)
        if lo == 0 and hi is None:
            return self.primitive("string")
        if hi is not None and hi < lo:
            raise _fail(path, f"maxLength {hi} is below minLength {lo}")
        if lo > self.limits.max_repetition:
            raise _fail(f"{path}/minLength", f"{lo} is more than the limit of {self.limits.max_repetition}")
        if hi is not None and hi > self.limits.max_repetition:
            hi = None
        char = self.primitive("char")
        count = f"{{{lo},}}" if hi is None else (f"{{{lo}}}" if hi == lo else f"{{{lo},{hi}}}")
        return self.rule(hint, f'"\\"" {char}{count} "\\"" space')

    def _integer(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        if schema.get("multipleOf", 1) != 1:
            raise _fail(f"{path}/multipleOf", "the keyword 'multipleOf' is not supported for constrained output")
        self.primitive("space")
        body = _numbers.integer_rule(dict(schema))
        return self.primitive("integer") if body is None else self.rule(hint, body)

    def _number(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        if "multipleOf" in schema:
            raise _fail(f"{path}/multipleOf", "the keyword 'multipleOf' is not supported for constrained output")
        self.primitive("space")
        body = _numbers.number_rule(dict(schema))
        return self.primitive("number") if body is None else self.rule(hint, body)

    def _boolean(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        return self.primitive("boolean")

    def _null(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        return self.primitive("null")


def json_schema_to_gbnf(schema: Any, *, limits: GrammarLimits | None = None) -> str:
    """A GBNF grammar whose every sentence is a JSON value valid against ``schema``.

    ``schema`` is a mapping, a boolean or JSON text.  Raises :class:`GrammarError`
    (HTTP 400) naming the problem when the schema is invalid, too large, too deep
    or uses a keyword that cannot be enforced.
    """
    builder = GrammarBuilder(limits)
    return builder.build(builder.add_schema(schema, "schema"))
