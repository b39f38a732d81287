"""Hostile constraints and use after close (issue 18, item 11): typed errors, not 200s or retry loops.

Through the real interfaces: the library (``llamarun.load``) and ``llamarun serve`` with the
official ``openai`` client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import llamarun
from llamarun.errors import ClosedHandleError, GrammarError, OverloadedError

from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)

QUESTION = [{"role": "user", "content": "Give me a value."}]
CONTRADICTIONS = [
    {"allOf": [{"type": "string"}, {"type": "integer"}]},
    {"allOf": [{"type": "integer", "minimum": 5}, {"maximum": 3}]},
    {"allOf": [{"const": 1}, {"const": 2}]},
    {"type": "object", "properties": {"a": {"allOf": [{"enum": ["x", "y"]}, {"enum": ["z"]}]}},
     "required": ["a"]},
]
NESTED_PATTERN = {"type": "string", "pattern": "((a{1,40}){1,40}){1,40}"}


def _format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[llamarun.LoadedModel]:
    with llamarun.load(str(smollm2_path)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def client(smol_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smol_server.url}/v1", api_key="x", max_retries=0, timeout=120)


@pytest.mark.parametrize("schema", CONTRADICTIONS)
def test_unsatisfiable_schema_library(model: llamarun.LoadedModel, schema: dict) -> None:
    with pytest.raises(GrammarError, match="can never be satisfied"):
        model.chat(QUESTION, max_tokens=8, response_format=_format(schema))


@pytest.mark.parametrize("schema", CONTRADICTIONS)
def test_unsatisfiable_schema_openai_400(client: openai.OpenAI, schema: dict) -> None:
    with pytest.raises(openai.BadRequestError, match="can never be satisfied"):
        client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=8,
                                       response_format=_format(schema))


def test_satisfiable_allof_still_works(client: openai.OpenAI) -> None:
    schema = {"allOf": [{"type": "number"}, {"type": "integer", "minimum": 1}, {"maximum": 9}]}
    reply = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=8, temperature=0,
                                           response_format=_format(schema))
    assert 1 <= int(reply.choices[0].message.content) <= 9


def test_nested_repetition_pattern_says_why_library(model: llamarun.LoadedModel) -> None:
    with pytest.raises(GrammarError, match="nested repetitions multiply out to 64000") as info:
        model.chat(QUESTION, max_tokens=8, response_format=_format(NESTED_PATTERN))
    assert "root" not in str(info.value)


def test_nested_repetition_pattern_says_why_openai(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="llama.cpp's grammar parser accepts"):
        client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=8,
                                       response_format=_format(NESTED_PATTERN))
    ok = {"type": "string", "pattern": "((a{1,12}){1,12}){1,12}"}  # 1,728 copies: llama.cpp takes it
    reply = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=4,
                                           response_format=_format(ok))
    assert reply.choices[0].message.content.startswith('"a')


def test_generate_after_close_is_not_retryable(tiny_model_path: Path) -> None:
    loaded = llamarun.load(str(tiny_model_path))
    assert loaded.generate("hello", max_tokens=2).text is not None
    loaded.close()
    for call in (lambda: loaded.generate("hello", max_tokens=2),
                 lambda: list(loaded.generate("hello", max_tokens=2, stream=True)),
                 lambda: loaded.tokenize("hello")):
        with pytest.raises(ClosedHandleError) as info:
            call()
        assert not isinstance(info.value, OverloadedError)
    loaded.close()  # idempotent
