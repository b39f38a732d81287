"""JSON Schema -> GBNF: what the grammars accept, limits, and typed errors for abuse."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from llamarun.engine import Model, SamplerChain
from llamarun.errors import GrammarError
from llamarun.grammar import (
    GrammarLimits,
    check_gbnf,
    json_object_grammar,
    json_schema_to_gbnf,
    response_format_grammar,
)
from llamarun.types import SamplingParams

from gbnf_regex import gbnf_to_regex


def accepts(schema: object, text: str) -> bool:
    return gbnf_to_regex(json_schema_to_gbnf(schema)).fullmatch(text) is not None


def nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path: Path):
    with Model(tiny_model_path) as model:
        yield model


@pytest.mark.parametrize(("lo", "hi"), [(0, 150), (-20, 7), (-1000, -37), (5, 5), (13, 2024), (-3, 0), (0, 0)])
def test_integer_ranges_exact(lo: int, hi: int) -> None:
    pattern = gbnf_to_regex(json_schema_to_gbnf({"type": "integer", "minimum": lo, "maximum": hi}))
    for n in range(lo - 150, hi + 150):
        assert (pattern.fullmatch(str(n)) is not None) == (lo <= n <= hi), n
    assert not pattern.fullmatch("007") and not pattern.fullmatch("1.5")


@pytest.mark.parametrize("schema", [{"type": "integer", "minimum": 17}, {"type": "integer", "exclusiveMinimum": 16},
                                    {"type": "integer", "maximum": -5}, {"type": "integer", "minimum": -12}])
def test_integer_one_sided_bounds(schema: dict) -> None:
    pattern = gbnf_to_regex(json_schema_to_gbnf(schema))
    for n in list(range(-200, 200)) + [10**9, -(10**9)]:
        assert (pattern.fullmatch(str(n)) is not None) == jsonschema.Draft202012Validator(schema).is_valid(n), n


@pytest.mark.parametrize("schema", [
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
    {"type": "number", "minimum": -5, "exclusiveMaximum": 5},
    {"type": "number", "minimum": -2.5, "maximum": -0.5},
    {"type": "number", "maximum": 0},
    {"type": "number", "minimum": 1.5},
])
def test_number_bounds_never_admit_invalid(schema: dict) -> None:
    pattern = gbnf_to_regex(json_schema_to_gbnf(schema))
    validator = jsonschema.Draft202012Validator(schema)
    samples = ["0", "-0", "0.0", "0.5", "1", "1.0", "1.5", "2", "-0.5", "-1", "-2.5", "-2.50", "-3", "4.99", "5",
               "5.0", "5.01", "10", "10.0", "10.5", "-5", "-5.0", "-4.2", "0.0001", "-0.0001", "100", "-100",
               "-2", "-1.5", "-0.75", "3.25"]
    accepted = [s for s in samples if pattern.fullmatch(s)]
    assert accepted, schema
    for text in accepted:
        assert validator.is_valid(json.loads(text)), (schema, text)
    assert len(accepted) >= 3, (schema, accepted)


def test_number_bounds_examples() -> None:
    unit = gbnf_to_regex(json_schema_to_gbnf({"type": "number", "minimum": 0, "maximum": 1}))
    assert all(unit.fullmatch(t) for t in ["0", "0.25", "1", "1.000"])
    assert not any(unit.fullmatch(t) for t in ["1.01", "-0.5", "2", "1e3"])
    positive = gbnf_to_regex(json_schema_to_gbnf({"type": "number", "exclusiveMinimum": 0}))
    assert positive.fullmatch("0.001") and positive.fullmatch("7.5") and not positive.fullmatch("0.000")


def test_object_required_optional_and_order() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"},
                                                "c": {"type": "null"}}, "required": ["b"]}
    ok = ['{"b": true}', '{"b":false,"a":1}', '{"b": true, "a": 3, "c": null}', '{"b":true,"c":null}']
    bad = ['{}', '{"a": 1}', '{"b": true, "d": 1}', '{"b": 1}', '{"b": true,}']
    assert all(accepts(schema, t) for t in ok)
    assert not any(accepts(schema, t) for t in bad)


def test_object_all_optional_and_additional() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "integer"}}}
    assert all(accepts(schema, t) for t in ['{}', '{"x": "a"}', '{"y": 2}', '{"x": "a", "y": 2}'])
    assert not accepts(schema, '{"z": 1}')
    extra = dict(schema, additionalProperties={"type": "integer"})
    assert accepts(extra, '{"z": 1}') and accepts(extra, '{"x": "a", "z": 1, "w": 2}')
    assert not accepts(extra, '{"z": "s"}')
    assert accepts({"type": "object", "additionalProperties": False}, "{}")
    assert not accepts({"type": "object", "additionalProperties": False}, '{"a": 1}')


def test_arrays_min_max_and_tuples() -> None:
    schema = {"type": "array", "items": {"enum": ["r", "g"]}, "minItems": 1, "maxItems": 3}
    assert accepts(schema, '["r"]') and accepts(schema, '["r", "g", "g"]')
    assert not accepts(schema, "[]") and not accepts(schema, '["r","r","r","r"]') and not accepts(schema, '["b"]')
    assert accepts({"type": "array", "maxItems": 0}, "[]")
    assert accepts({"type": "array", "items": {"type": "integer"}}, "[]")
    assert accepts({"type": "array", "items": {"type": "integer"}}, "[1, 2, 3, 4, 5, 6]")
    tup = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}
    assert accepts(tup, '["a", 1]') and not accepts(tup, '[1, "a"]')


def test_enum_const_and_type_lists() -> None:
    assert accepts({"enum": ["a", 1, None, {"k": [True]}]}, '{"k": [true]}')
    assert accepts({"const": "x"}, '"x"') and not accepts({"const": "x"}, '"y"')
    schema = {"type": ["string", "null"]}
    assert accepts(schema, "null") and accepts(schema, '"s"') and not accepts(schema, "1")
    assert accepts({"type": "string", "nullable": True}, "null")


def test_strings_length_formats_patterns() -> None:
    schema = {"type": "string", "minLength": 2, "maxLength": 4}
    assert accepts(schema, '"ab"') and accepts(schema, '"abcd"') and not accepts(schema, '"a"')
    assert not accepts(schema, '"abcde"')
    assert accepts(schema, '"a\\"b"')  # an escape counts as one character
    assert accepts({"type": "string", "format": "date"}, '"2024-02-29"')
    assert not accepts({"type": "string", "format": "date"}, '"2024-13-01"')
    assert accepts({"type": "string", "format": "date-time"}, '"2024-02-29T12:30:00Z"')
    assert accepts({"type": "string", "format": "uuid"}, '"123e4567-e89b-12d3-a456-426614174000"')
    assert accepts({"type": "string", "format": "ipv4"}, '"192.168.0.255"')
    assert not accepts({"type": "string", "format": "ipv4"}, '"256.1.1.1"')
    assert accepts({"type": "string", "format": "email"}, '"a.b@example.org"')
    pattern = {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}(x|yz)?$"}
    assert accepts(pattern, '"AB-123"') and accepts(pattern, '"AB-123yz"') and not accepts(pattern, '"AB-12"')
    assert accepts({"type": "string", "pattern": 'a"b\\\\c'}, '"a\\"b\\\\c"')


def test_refs_defs_anyof_allof() -> None:
    schema = {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
        "type": "object",
        "properties": {"p": {"$ref": "#/$defs/point"},
                       "q": {"anyOf": [{"$ref": "#/$defs/point"}, {"type": "null"}]},
                       "r": {"allOf": [{"$ref": "#/$defs/point"}, {"properties": {"y": {"type": "integer"}}}]}},
        "required": ["p", "q", "r"],
    }
    assert accepts(schema, '{"p": {"x": 1}, "q": null, "r": {"x": 1, "y": 2}}')
    assert accepts(schema, '{"p": {"x": 1}, "q": {"x": 2}, "r": {"x": 1}}')
    assert not accepts(schema, '{"p": {"x": 1}, "q": 3, "r": {"x": 1}}')


def test_recursive_ref_is_a_valid_grammar(tiny_model: Model) -> None:
    tree = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                                 "kids": {"type": "array",
                                                                          "items": {"$ref": "#/$defs/node"}}},
                               "required": ["v"]}}, "$ref": "#/$defs/node"}
    grammar = json_schema_to_gbnf(tree)
    SamplerChain(tiny_model, SamplingParams(grammar=grammar)).close()


def test_every_converted_grammar_is_accepted_by_llama_cpp(tiny_model: Model) -> None:
    schemas = [nested(40), {"type": "integer", "minimum": -99, "maximum": 12345}, {"type": "string", "format": "uri"},
               {"type": "array", "items": {"type": "string", "maxLength": 5000}, "maxItems": 5000},
               {"type": "string", "pattern": "^(a|b)*c{2,3}[^x]$"}, True, {}]
    for schema in schemas:
        SamplerChain(tiny_model, SamplingParams(grammar=json_schema_to_gbnf(schema))).close()
    SamplerChain(tiny_model, SamplingParams(grammar=json_object_grammar())).close()


def test_json_mode_accepts_objects_up_to_its_depth() -> None:
    pattern = gbnf_to_regex(json_object_grammar(max_depth=2))
    assert pattern.fullmatch('{"a": 1, "b": "x", "c": [true, null], "d": {"e": -1.5e3}}')
    assert pattern.fullmatch("{}") and pattern.fullmatch('{"a": {}}')
    assert not pattern.fullmatch("[1]") and not pattern.fullmatch('"s"')
    assert not pattern.fullmatch('{"a": {"b": {"c": 1}}}')  # deeper than 2
    with pytest.raises(GrammarError):
        json_object_grammar(max_depth=0)


def test_schema_nested_1000_deep_rejected() -> None:
    with pytest.raises(GrammarError, match="nested deeper than 100"):
        json_schema_to_gbnf(nested(1_000))
    with pytest.raises(GrammarError, match="nested deeper than 100"):
        text = '{"type": "object", "properties": {"a": ' * 1_000 + '{"type": "string"}' + "}}" * 1_000
        json_schema_to_gbnf(text)  # as text: rejected before json.loads recurses


def test_huge_schema_rejected() -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(30_000)}}
    with pytest.raises(GrammarError, match="more than 20000 values"):
        json_schema_to_gbnf(wide)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "strnig"}, "unknown type 'strnig'"),
        ({"type": "object", "properties": []}, "/properties"),
        ({"type": "object", "required": "a"}, "/required"),
        ({"type": "array", "minItems": -1}, "minItems"),
        ({"type": "array", "minItems": 5, "maxItems": 2}, "below minItems"),
        ({"type": "array", "minItems": 5000}, "limit of 1000"),
        ({"enum": []}, "non-empty"),
        ({"$ref": "#/$defs/missing"}, "does not resolve"),
        ({"$ref": "https://example.com/s.json"}, "only local references"),
        ({"not": {"type": "string"}}, "'not' is not supported"),
        ({"type": "object", "patternProperties": {"a": {}}}, "patternProperties"),
        ({"type": "string", "pattern": "foo**"}, "invalid JSON schema pattern"),
        ({"type": "string", "pattern": "(?=a)b"}, "not supported"),
        ({"type": "string", "pattern": "(a)\\1"}, "not supported"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "no integer lies between"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"type": "string", "format": ["date"]}, "/format: must be a string"),
        (False, "admits no value"),
        ("{not json", "not valid JSON"),
        (42, "must be an object or a boolean"),
    ],
)
def test_invalid_schemas_named(schema: object, message: str) -> None:
    with pytest.raises(GrammarError, match=message) as info:
        json_schema_to_gbnf(schema)
    assert info.value.http_status == 400


def test_ref_cycle_without_structure_is_rejected_not_hung() -> None:
    with pytest.raises(GrammarError):
        json_schema_to_gbnf({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})


def test_response_formats() -> None:
    assert response_format_grammar(None) is None
    assert response_format_grammar({"type": "text"}) is None
    assert response_format_grammar("json") == json_object_grammar()
    assert response_format_grammar({"type": "json_object"}) == json_object_grammar()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    openai = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert response_format_grammar(openai) == response_format_grammar(schema) == json_schema_to_gbnf(schema)
    check_gbnf(response_format_grammar(schema) or "")
    with pytest.raises(GrammarError):
        response_format_grammar({"type": "json_schema"})
    with pytest.raises(GrammarError):
        response_format_grammar("yaml")


def test_limits_apply_to_schemas() -> None:
    with pytest.raises(GrammarError, match="nested deeper than 3"):
        json_schema_to_gbnf(nested(5), limits=GrammarLimits(max_schema_depth=3))
