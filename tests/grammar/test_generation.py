"""Grammar-constrained generation with SmolLM2: schemas validate, JSON mode parses, choices are exact."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llamarun.chat import ChatTemplate, prepare_chat
from llamarun.grammar import choice_grammar

from smolgen import SmolGenerator

pytestmark = pytest.mark.smollm2

POINT = {"type": "object", "properties": {"x": {"type": "integer", "minimum": -100, "maximum": 100},
                                          "y": {"type": "integer", "minimum": -100, "maximum": 100}},
         "required": ["x", "y"]}
NAME = {"type": "string", "minLength": 1, "maxLength": 20}

SCHEMAS = [
    ("Describe a person called Anna who is 31.",
     {"type": "object", "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
      "required": ["name", "age"]}),
    ("What is the sentiment of: 'I love this phone!'",
     {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
      "required": ["sentiment"]}),
    ("Is water wet? Give your answer and your confidence.",
     {"type": "object", "properties": {"answer": {"type": "boolean"},
                                       "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
      "required": ["answer", "confidence"], "additionalProperties": False}),
    ("List some colors of the rainbow.",
     {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 2, "maxItems": 4}),
    ("Give the address of a bakery in Paris.",
     {"type": "object", "properties": {
         "name": NAME,
         "address": {"type": "object", "properties": {"street": {"type": "string", "maxLength": 30},
                                                      "city": NAME,
                                                      "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                     "required": ["street", "city", "zip"]}},
      "required": ["name", "address"]}),
    ("Recommend a movie.",
     {"type": "object", "properties": {"title": {"type": "string", "maxLength": 30},
                                       "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
                                       "genre": {"enum": ["drama", "comedy", "action", "documentary"]}},
      "required": ["title"]}),
    ("Write a shopping list with quantities.",
     {"type": "object", "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
         "type": "object", "properties": {"name": {"type": "string", "maxLength": 15},
                                          "qty": {"type": "integer", "minimum": 1, "maximum": 10}},
         "required": ["name", "qty"]}}}, "required": ["items"]}),
    ("Schedule a meeting on a weekday.",
     {"type": "object", "properties": {"kind": {"const": "meeting"},
                                       "day": {"enum": ["monday", "tuesday", "wednesday", "thursday", "friday"]}},
      "required": ["kind", "day"]}),
    ("When is Christmas 2025?",
     {"type": "object", "properties": {"event": NAME, "date": {"type": "string", "format": "date"}},
      "required": ["event", "date"]}),
    ("Pick a number between 1 and 100.", {"type": "integer", "minimum": 1, "maximum": 100}),
    ("Give me a value: a count or a short word.",
     {"type": "object", "properties": {"value": {"anyOf": [{"type": "integer"},
                                                           {"type": "string", "maxLength": 10}]}},
      "required": ["value"]}),
    ("Give a line segment from one point to another.",
     {"$defs": {"point": POINT}, "type": "object",
      "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
      "required": ["start", "end"]}),
    ("Give the first and middle name of a person.",
     {"type": "object", "properties": {"first": {"type": "string", "maxLength": 12},
                                       "middle": {"type": ["string", "null"], "maxLength": 12}},
      "required": ["first", "middle"]}),
    ("Give a fruit and how many you have.",
     {"type": "array", "prefixItems": [{"type": "string", "maxLength": 12},
                                       {"type": "integer", "minimum": 0, "maximum": 99}]}),
    ("Make up an identifier for an order.",
     {"type": "object", "properties": {"order_id": {"type": "string", "format": "uuid"}}, "required": ["order_id"]}),
    ("What is the temperature in Rome in July?",
     {"type": "object", "properties": {"temperature": {"type": "number", "minimum": -50, "maximum": 60},
                                       "unit": {"const": "C"}}, "required": ["temperature", "unit"]}),
    ("Tag this article about football and money.",
     {"type": "object", "properties": {"tags": {"type": "array", "minItems": 1, "maxItems": 3,
                                                "items": {"enum": ["sports", "finance", "politics", "science"]}}},
      "required": ["tags"]}),
    ("Describe a small company and its CEO.",
     {"type": "object", "properties": {"company": {"type": "object", "properties": {
         "name": NAME, "employees": {"type": "integer", "minimum": 1, "maximum": 100000},
         "ceo": {"type": "object", "properties": {"name": NAME, "age": {"type": "integer", "minimum": 18,
                                                                        "maximum": 99}},
                 "required": ["name", "age"]}}, "required": ["name", "employees", "ceo"]}},
      "required": ["company"]}),
    ("Is the store open?",
     {"type": "object", "properties": {"open": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 25}},
      "required": ["open"], "additionalProperties": False}),
    ("Give a title for a haiku and its number of lines.",
     {"type": "object", "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 25},
                                       "lines": {"type": "integer", "minimum": 3, "maximum": 3}},
      "required": ["title", "lines"]}),
]

JSON_PROMPTS = [
    "Return a JSON object whose key \"capital\" is the capital of France.",
    "Give a JSON object with the keys \"x\" and \"y\" for the point (1, 2).",
    "Answer in JSON with the key \"answer\": is the sky blue?",
    "Return a JSON object with the name and age of a 30 year old man called Tom.",
    "List two fruits in a JSON object under the key \"fruits\".",
]

QUESTIONS = ["Is Paris in France?", "Is the sun cold?", "Can fish swim?", "Is 2 bigger than 3?",
             "Do cats bark?", "Is water wet?"]



def messages(question: str) -> list[dict]:
    return [{"role": "system", "content": "Reply with JSON only."}, {"role": "user", "content": question}]


def test_twenty_distinct_schemas() -> None:
    assert len(SCHEMAS) == 20 and len({json.dumps(s, sort_keys=True) for _, s in SCHEMAS}) == 20


@pytest.mark.parametrize(("question", "schema"), SCHEMAS, ids=[f"schema{i}" for i in range(len(SCHEMAS))])
def test_schema_output_validates(smol_gen: SmolGenerator, smol_template: ChatTemplate, question: str,
                                 schema: dict) -> None:
    plan = prepare_chat(smol_template, messages(question), response_format=schema)
    result = smol_gen.generate(plan.prompt, grammar=plan.grammar, max_tokens=160)
    assert result.finish_reason == "stop", result.text
    jsonschema.validate(json.loads(result.text), schema)


@pytest.mark.parametrize("question", JSON_PROMPTS)
def test_json_mode_always_parses(smol_gen: SmolGenerator, smol_template: ChatTemplate, question: str) -> None:
    plan = prepare_chat(smol_template, messages(question), response_format={"type": "json_object"})
    result = smol_gen.generate(plan.prompt, grammar=plan.grammar, max_tokens=160)
    assert result.finish_reason == "stop", result.text
    assert isinstance(json.loads(result.text), dict)


@pytest.mark.parametrize("question", QUESTIONS)
def test_yes_no_grammar(smol_gen: SmolGenerator, smol_template: ChatTemplate, question: str) -> None:
    prompt = smol_template.render([{"role": "user", "content": f"{question} Answer yes or no."}])
    result = smol_gen.generate(prompt, grammar=choice_grammar(["yes", "no"]), max_tokens=8)
    assert result.text in ("yes", "no") and result.finish_reason == "stop"
