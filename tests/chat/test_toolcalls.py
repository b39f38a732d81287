"""Tool calls parsed out of model text in each common format; tool definitions and choice."""

from __future__ import annotations

import json

import pytest

from llamarun.chat import Tool, ToolCall, ToolCallFormat, ToolChoice, parse_tool_calls, parse_tools, tool_call_grammar
from llamarun.errors import GrammarError, InvalidParameterError
from llamarun.grammar import check_gbnf

from grammar.gbnf_regex import gbnf_to_regex  # tests/grammar (pythonpath includes tests/)

WEATHER = Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]})
TIME = Tool("get_time", "Time", {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}})
TOOLS = (WEATHER, TIME)


def calls(text: str, tools=TOOLS) -> tuple[str, list[tuple[str, dict]]]:
    content, found = parse_tool_calls(text, tools)
    return content, [(c.name, dict(c.arguments)) for c in found]


@pytest.mark.parametrize(
    ("text", "content", "expected"),
    [
        # Hermes / Qwen
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "",
         [("get_weather", {"city": "Paris"})]),
        ('Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
         '<tool_call>{"name": "get_time", "arguments": {"tz": "CET"}}</tool_call>', "Let me check.",
         [("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})]),
        ('<tool_call>\n{"name": "get_time", "arguments": {}}', "", [("get_time", {})]),  # cut before the end tag
        # Llama 3
        ('{"name": "get_weather", "parameters": {"city": "Rome"}}', "", [("get_weather", {"city": "Rome"})]),
        ('<|python_tag|>{"name": "get_time", "parameters": {"tz": "UTC"}}', "", [("get_time", {"tz": "UTC"})]),
        ('{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "Bern"}}', "",
         [("get_time", {}), ("get_weather", {"city": "Bern"})]),
        # Mistral
        ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Lyon"}, "id": "abcdefghi"}]', "",
         [("get_weather", {"city": "Lyon"})]),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Nice"}', "", [("get_weather", {"city": "Nice"})]),
        # plain JSON: object, array, OpenAI shapes, arguments as text, code fence, leading text
        ('{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [("get_weather", {"city": "Paris"})]),
        ('[{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_time", "arguments": {}}]', "",
         [("get_weather", {"city": "A"}), ("get_time", {})]),
        ('{"function": {"name": "get_weather", "arguments": "{\\"city\\": \\"B\\"}"}, "type": "function"}', "",
         [("get_weather", {"city": "B"})]),
        ('{"tool_calls": [{"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}]}', "",
         [("get_time", {"tz": "UTC"})]),
        ('```json\n{"name": "get_weather", "arguments": {"city": "C"}}\n```', "", [("get_weather", {"city": "C"})]),
        ('Sure: {"name": "get_weather", "arguments": {"city": "D"}}', "Sure:", [("get_weather", {"city": "D"})]),
    ],
)
def test_formats(text: str, content: str, expected: list) -> None:
    assert calls(text) == (content, expected)


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        '{"name": "unknown_tool", "arguments": {}}',  # not one of the tools
        '{"name": "get_weather", "arguments": "not json"}',
        '{"name": "Alice", "age": 30}',  # some other JSON object
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # unterminated
        "<tool_call>not json</tool_call>",
        "[TOOL_CALLS] oops",
        "",
    ],
)
def test_not_calls_stay_content(text: str) -> None:
    assert parse_tool_calls(text, TOOLS) == (text, ())


def test_without_tools_any_name_is_accepted() -> None:
    assert calls('{"name": "anything", "arguments": {"x": 1}}', None) == ("", [("anything", {"x": 1})])


def test_tool_call_shapes() -> None:
    call = ToolCall("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_") and call.id != ToolCall("x").id
    assert call.to_openai() == {"id": call.id, "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert call.to_ollama() == {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def test_parse_tools_and_choice() -> None:
    tools = parse_tools([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
                         {"name": "g", "description": "bare"}])
    assert [t.name for t in tools] == ["f", "g"] and tools[1].parameters == {"type": "object", "properties": {}}
    assert tools[0].to_dict() == {"type": "function", "function": {"name": "f", "description": "",
                                                                   "parameters": {"type": "object"}}}
    assert ToolChoice.parse(None, tools) == ToolChoice("auto") and ToolChoice.parse(None, ()) == ToolChoice("none")
    assert ToolChoice.parse("required", tools).forces_call
    assert ToolChoice.parse({"type": "function", "function": {"name": "g"}}, tools) == ToolChoice("function", "g")
    for bad in ("sometimes", {"type": "function", "function": {"name": "h"}}, 3):
        with pytest.raises(InvalidParameterError):
            ToolChoice.parse(bad, tools)
    with pytest.raises(InvalidParameterError):
        ToolChoice.parse("required", ())
    for bad_tools in ([{"name": "bad name!"}], [{"name": "f"}, {"name": "f"}], [{"type": "retrieval"}], "f",
                      [{"name": "f", "parameters": "x"}]):
        with pytest.raises(InvalidParameterError):
            parse_tools(bad_tools)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", list(ToolCallFormat))
def test_forcing_grammar_accepts_exactly_valid_calls(fmt: ToolCallFormat) -> None:
    grammar = tool_call_grammar(TOOLS, ToolChoice("required"), fmt)
    check_gbnf(grammar)
    pattern = gbnf_to_regex(grammar)
    key = "parameters" if fmt is ToolCallFormat.LLAMA3 else "arguments"
    good = [{"name": "get_weather", key: {"city": "Paris"}}, {"name": "get_time", key: {}},
            {"name": "get_time", key: {"tz": "UTC"}}]
    bad = [{"name": "get_weather", key: {}}, {"name": "get_time", key: {"tz": "PST"}},
           {"name": "other", key: {}}, {"name": "get_weather", key: {"city": 3}}]

    def wrap(obj: dict) -> str:
        text = json.dumps(obj)
        return {ToolCallFormat.HERMES: f"<tool_call>\n{text}\n</tool_call>",
                ToolCallFormat.MISTRAL: f"[TOOL_CALLS][{text}]"}.get(fmt, text)

    for obj in good:
        assert pattern.fullmatch(wrap(obj)), obj
        assert parse_tool_calls(wrap(obj), TOOLS)[1][0].name == obj["name"]
    for obj in bad:
        assert not pattern.fullmatch(wrap(obj)), obj


def test_named_function_and_parallel_grammars() -> None:
    named = gbnf_to_regex(tool_call_grammar(TOOLS, ToolChoice("function", "get_time")))
    assert named.fullmatch('{"name": "get_time", "arguments": {}}')
    assert not named.fullmatch('{"name": "get_weather", "arguments": {"city": "X"}}')
    parallel = gbnf_to_regex(tool_call_grammar(TOOLS, ToolChoice("required"), parallel=True))
    assert parallel.fullmatch('[{"name": "get_time", "arguments": {}}, {"name": "get_time", "arguments": {}}]')
    assert parallel.fullmatch('{"name": "get_time", "arguments": {}}')


def test_bad_tool_schema_is_a_grammar_error() -> None:
    bad = Tool("f", "", {"type": "object", "properties": {"x": {"type": "strnig"}}})
    with pytest.raises(GrammarError, match="unknown type"):
        tool_call_grammar([bad], ToolChoice("required"))
