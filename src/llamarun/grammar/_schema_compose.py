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
            merged = merge_schemas(merged, part)
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
