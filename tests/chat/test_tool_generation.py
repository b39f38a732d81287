"""Tool calling with SmolLM2: `required` and a named function always give a valid call; a round trip works."""

from __future__ import annotations

import jsonschema
import pytest

from llamarun.chat import ChatTemplate, prepare_chat

from grammar.smolgen import SmolGenerator  # tests/grammar (pythonpath includes tests/)

pytestmark = pytest.mark.smollm2

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two integers",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {
            "timezone": {"type": "string", "enum": ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]}},
            "required": ["timezone"]}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NAMED = {"type": "function", "function": {"name": "get_time"}}

CASES = [
    ("What is the weather in Paris?", "required"),
    ("How warm is it in Tokyo in fahrenheit?", "required"),
    ("What is 17 plus 25?", "required"),
    ("What time is it in New York?", "required"),
    ("Hello! How are you?", "required"),
    ("What time is it in Paris?", NAMED),
    ("Tell me a joke.", NAMED),
]



@pytest.mark.parametrize(("question", "choice"), CASES)
def test_forced_tool_call_is_always_valid(smol_gen: SmolGenerator, smol_template: ChatTemplate, question: str,
                                          choice: object) -> None:
    messages = [{"role": "user", "content": question}]
    plan = prepare_chat(smol_template, messages, tools=TOOLS, tool_choice=choice)
    result = smol_gen.generate(plan.prompt, grammar=plan.grammar, max_tokens=96)
    assert result.finish_reason == "stop", result.text
    output = plan.parse(result.text)
    assert len(output.tool_calls) == 1 and output.content == "", result.text
    call = output.tool_calls[0]
    if choice == NAMED:
        assert call.name == "get_time"
    jsonschema.validate(dict(call.arguments), SCHEMAS[call.name])


def test_round_trip_call_result_answer(smol_gen: SmolGenerator, smol_template: ChatTemplate) -> None:
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    plan = prepare_chat(smol_template, messages, tools=TOOLS, tool_choice={"type": "function",
                                                                      "function": {"name": "get_weather"}})
    first = plan.parse(smol_gen.generate(plan.prompt, grammar=plan.grammar, max_tokens=96).text)
    call = first.tool_calls[0]
    assert call.name == "get_weather"
    messages += [first.to_message(), {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    plan = prepare_chat(smol_template, messages, tools=TOOLS)  # auto: the model may answer or call again
    assert "Result of get_weather:\n18 degrees and sunny" in plan.prompt
    result = smol_gen.generate(plan.prompt, grammar=plan.grammar, max_tokens=48)
    answer = plan.parse(result.text)
    assert answer.content or answer.tool_calls
    for extra_call in answer.tool_calls:
        jsonschema.validate(dict(extra_call.arguments), SCHEMAS[extra_call.name])
