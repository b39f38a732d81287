"""Ready-made grammars: JSON mode, a fixed set of answers, and API response formats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import GrammarError
from .gbnf import gbnf_literal
from .limits import GrammarLimits
from .schema import GrammarBuilder

__all__ = ["choice_grammar", "json_object_grammar", "response_format_grammar"]


def json_object_grammar(max_depth: int = 8) -> str:
    """JSON mode: any JSON object nested at most ``max_depth`` levels (whitespace
    between tokens limited to one space).

    The depth bound is what stops a small model that keeps opening ``{"data": {...``
    (seen with SmolLM2 at temperature 0): at the last level only scalars are allowed.
    """
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or not 1 <= max_depth <= 64:
        raise GrammarError("max_depth of JSON mode must be between 1 and 64", field="format")
    builder = GrammarBuilder()
    string, space = builder.primitive("string"), builder.primitive("space")
    scalar = builder.rule("scalar", f'{string} | {builder.primitive("number")} | ("true" | "false" | "null") {space}')
    inner = scalar
    for level in range(max_depth, 0, -1):
        obj = builder.rule(f"object-{level}", f'"{{" {space} ( {string} ":" {space} {inner} ( "," {space} {string} ":" '
                                              f'{space} {inner} )* )? "}}" {space}')
        if level == 1:
            return builder.build(obj)
        arr = builder.rule(f"array-{level}", f'"[" {space} ( {inner} ( "," {space} {inner} )* )? "]" {space}')
        inner = builder.rule(f"value-{level - 1}", f"{obj} | {arr} | {scalar}")
    raise AssertionError("unreachable")


def choice_grammar(options: Sequence[str]) -> str:
    """Exactly one of ``options`` (e.g. ``["yes", "no"]``), nothing before or after."""
    if isinstance(options, str) or not options or not all(isinstance(o, str) and o for o in options):
        raise GrammarError("choices must be a non-empty list of non-empty strings", field="grammar")
    return "root ::= " + " | ".join(gbnf_literal(o) for o in dict.fromkeys(options)) + "\n"


def response_format_grammar(fmt: Any, *, limits: GrammarLimits | None = None) -> str | None:
    """The grammar for an API's structured-output request, or None for free text.

    Accepts Ollama's ``format`` (``"json"`` or a JSON schema object) and OpenAI's
    ``response_format`` (``{"type": "text" | "json_object" | "json_schema",
    "json_schema": {"schema": {...}}}``).
    """
    if fmt is None or fmt == "" or fmt == "text":
        return None
    if fmt == "json":
        return json_object_grammar()
    if not isinstance(fmt, Mapping):
        raise GrammarError(f"unsupported format {str(fmt)[:40]!r}: use \"json\" or a JSON schema object",
                           field="format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return json_object_grammar()
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or "schema" not in spec:
            raise GrammarError("response_format json_schema needs {\"json_schema\": {\"schema\": {...}}}",
                               field="response_format")
        fmt = spec["schema"]
    builder = GrammarBuilder(limits)
    return builder.build(builder.add_schema(fmt, "schema"))
