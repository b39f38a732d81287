"""JSON Schema -> GBNF for references and composition: ``$ref``, ``allOf``, ``anyOf`` / ``oneOf``.

``$ref`` only resolves inside the same document (``#/...``, JSON-pointer
escapes decoded); each target becomes one named rule, so recursive schemas
work.  ``allOf`` is merged into one schema; ``anyOf`` / ``oneOf`` become
alternatives (exclusivity is not enforced).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ._schema_base import RuleSet, fail

__all__ = ["CompositionRules", "merge_schemas"]


def merge_schemas(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
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


_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_NUMBER = {"number", "integer"}


def _types(value: Any) -> set[str] | None:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return set(value)
    return None


def _common_types(a: set[str], b: set[str]) -> list[str]:
    """Types both allow: ``integer`` is a ``number``."""
    both = a & b
    if "integer" in a and "number" in b or "number" in a and "integer" in b:
        both.add("integer")
    if "integer" in both and "number" in both and not ("number" in a and "number" in b):
        both.discard("number")
    return sorted(both)


def _intersect(base: Mapping[str, Any], part: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``base`` AND ``part`` (an allOf member): a clear contradiction is a :class:`GrammarError`.

    Detected cheaply: disjoint ``type`` sets, two different ``const`` values, ``enum`` lists
    with nothing in common (or a ``const`` outside the ``enum``), and lower bounds above
    upper bounds once both schemas' bounds are combined (the larger minimum, the smaller maximum).
    """
    out = merge_schemas(base, part)
    ta, tb = _types(base.get("type")), _types(part.get("type"))
    if ta is not None and tb is not None:
        common = _common_types(ta, tb)
        if not common:
            raise fail(path, f"allOf can never be satisfied: type {sorted(ta)} and type {sorted(tb)} have "
                             "nothing in common; fix the schema")
        out["type"] = common[0] if len(common) == 1 else common
    if "const" in base and "const" in part and base["const"] != part["const"]:
        raise fail(path, f"allOf can never be satisfied: const {base['const']!r} and const {part['const']!r}")
    if isinstance(base.get("enum"), list) and isinstance(part.get("enum"), list):
        out["enum"] = [v for v in base["enum"] if v in part["enum"]]
        if not out["enum"]:
            raise fail(path, "allOf can never be satisfied: the enum lists have no value in common")
    if "const" in out and isinstance(out.get("enum"), list) and out["const"] not in out["enum"]:
        raise fail(path, f"allOf can never be satisfied: const {out['const']!r} is not in the enum")
    for keys, pick in ((_LOWER, max), (_UPPER, min)):
        for key in keys:
            values = [s[key] for s in (base, part) if isinstance(s.get(key), (int, float))]
            if len(values) == 2:
                out[key] = pick(values)
    for low, high in zip(_LOWER, _UPPER):
        lo, hi = out.get(low), out.get(high)
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            raise fail(path, f"allOf can never be satisfied: {low} {lo} is above {high} {hi}")
    return out


class CompositionRules(RuleSet):
    """Rules for ``$ref`` (local, recursion allowed), ``allOf`` (merged) and ``anyOf`` / ``oneOf``."""

    def _ref(self, ref: Any, hint: str, path: str) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise fail(f"{path}/$ref", f"only local references ('#/...') are supported, got {ref!r}")
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
                raise fail(f"{path}/$ref", f"reference {ref!r} does not resolve in this schema")
        name = self._fresh_name(ref.rsplit("/", 1)[-1] or "ref")
        self._rules[name] = '""'  # placeholder so recursive references find the name
        self._refs[key] = name
        self._rules[name] = self._visit(target, f"{name}-body", ref[1:])
        return name

    def _all_of(self, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise fail(f"{path}/allOf", "must be a non-empty list of schemas")
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for i, part in enumerate(parts):
            if part is True:
                continue
            if not isinstance(part, Mapping):
                raise fail(f"{path}/allOf/{i}", "must be a schema object")
            if "$ref" in part and len(part) == 1:
                part = self._resolve_plain(part["$ref"], f"{path}/allOf/{i}")
            merged = _intersect(merged, part, f"{path}/allOf/{i}")
        return merged

    def _resolve_plain(self, ref: Any, path: str) -> Mapping[str, Any]:
        target = self._doc
        if isinstance(ref, str) and ref.startswith("#"):
            for part in ref[1:].split("/")[1:]:
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if isinstance(target, Mapping):
                return target
        raise fail(path, f"reference {ref!r} does not resolve to a schema object")

    def _any_of(self, schema: Mapping[str, Any], key: str, hint: str, path: str) -> str:
        alts = schema[key]
        if not isinstance(alts, list) or not alts:
            raise fail(f"{path}/{key}", "must be a non-empty list of schemas")
        siblings = {k: v for k, v in schema.items() if k not in (key, "anyOf", "oneOf", "title", "description")}
        names = []
        for i, alt in enumerate(alts):
            if siblings and isinstance(alt, Mapping):
                alt = merge_schemas(siblings, alt)
            names.append(self._visit(alt, f"{hint}-{i}", f"{path}/{key}/{i}"))
        return self.rule(hint, " | ".join(dict.fromkeys(names)))
