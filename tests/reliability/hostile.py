"""The hostile-input cases, generated once and run against every frontend (tests/reliability).

A case says what it puts in which abstract slot of a request (the prompt text, the model name, the
length and temperature, a grammar, a JSON schema, a chat template, a blob digest); each frontend's
adapter (frontends.py) writes those slots into its own protocol. ``refused`` cases must get the
protocol's clear client error (HTTP 4xx, a gRPC client status, a bridge error code other than
``internal``); the others may be answered or refused, never a server error. After every case the
server must still answer a normal request.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

__all__ = ["Hostile", "OVERSIZED_BYTES", "hostile_cases"]

OVERSIZED_BYTES = 20 << 20  # past every frontend's limit: HTTP 16 MiB, gRPC 4 MiB messages, bridge 1 MiB lines


@dataclass(frozen=True)
class Hostile:
    """One hostile request. ``text`` is the prompt (bytes: raw bytes that are not UTF-8); ``text_json``,
    when set, is raw JSON put where the prompt's JSON goes (deep nesting no encoder would write)."""

    id: str
    incident: str
    text: str | bytes = "hello"
    text_json: str | None = None
    model: str = "tiny"
    max_tokens: int | float = 4
    temperature: float | None = None
    grammar: str | None = None
    schema: str | None = None  # JSON text
    template: str | None = None
    digest: str | None = None
    refused: bool = True

    def prompt_json(self) -> bytes:
        """The prompt as a JSON value (bytes): lone surrogates escaped, invalid UTF-8 left raw."""
        if self.text_json is not None:
            return self.text_json.encode()
        if isinstance(self.text, bytes):
            return b'"' + self.text + b'"'
        return json.dumps(self.text).encode()


def _deep_grammar(depth: int) -> str:
    return "root ::= " + "(" * depth + '"a"' + ")" * depth


def _deep_schema(depth: int) -> str:
    return '{"items":' * depth + '{"type":"string"}' + "}" * depth


@functools.cache
def hostile_cases() -> tuple[Hostile, ...]:
    """Every case (built once: some are megabytes)."""
    wide_any = json.dumps({"anyOf": [{"const": f"v{i}" * 20} for i in range(20_000)]})
    return (
        Hostile("oversized_body", "CVE-2024-12886 (endless/huge bodies)", text="a" * OVERSIZED_BYTES),
        Hostile("deep_json_100k", "json recursion limits (deep bodies)", text_json="[" * 100_000 + "]" * 100_000),
        Hostile("max_tokens_1e30", "absurd numbers", max_tokens=10**30),
        Hostile("max_tokens_negative", "absurd numbers", max_tokens=-7),
        Hostile("max_tokens_float", "absurd numbers", max_tokens=1e308),
        Hostile("temperature_nan", "absurd numbers", temperature=float("nan")),
        Hostile("temperature_inf", "absurd numbers", temperature=float("inf")),
        Hostile("temperature_1e308", "absurd numbers", temperature=1e308),
        Hostile("invalid_utf8", "undecodable text", text=b"hi \xff\xfe \xc3\x28"),
        Hostile("lone_surrogate", "undecodable text", text="hi \ud800 there \udfff"),
        Hostile("nul_bytes", "C strings cut at NUL", text="a\x00b\x00" * 8, refused=False),
        Hostile("prompt_past_context", "prompts longer than the context", text="hello " * 3000, refused=False),
        Hostile("grammar_60000_deep", "llama.cpp grammar stack overflow", grammar=_deep_grammar(60_000)),
        Hostile("schema_60000_deep", "llama.cpp grammar stack overflow (via schema)", schema=_deep_schema(60_000)),
        Hostile("schema_pathological_regex", "regex repetition blow-up",
                schema=json.dumps({"type": "string", "pattern": "((a{1,1000}){1,1000}){1,1000}"})),
        Hostile("schema_huge_min_length", "schema repetition blow-up",
                schema=json.dumps({"type": "string", "minLength": 10**9})),
        Hostile("schema_20000_wide", "schema blow-up", schema=wide_any, refused=False),
        Hostile("template_sandbox_escape", "server-side template injection",
                template="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
        Hostile("template_endless_loop", "template denial of service",
                template="{% for i in range(10**9) %}{% for j in range(10**9) %}x{% endfor %}{% endfor %}"),
        Hostile("model_traversal", "Ollama digest/name traversal (CVE-2024-37032)", model="../../../../etc/passwd"),
        Hostile("model_absolute", "name traversal", model="/etc/passwd"),
        Hostile("model_nul", "name traversal", model="tiny\x00../../x"),
        Hostile("digest_traversal", "Ollama digest traversal (CVE-2024-37032)", digest="sha256:../../../../etc/passwd"),
    )
