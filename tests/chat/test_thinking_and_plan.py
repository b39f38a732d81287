"""Thinking split (whole and streamed, never half a marker) and the chat plan used by the frontends."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llamarun.chat import ChatTemplate, ThinkingSplitter, ToolCallFormat, prepare_chat, split_thinking
from llamarun.chat.thinking import thinking_markers, thinking_token_count
from llamarun.errors import GrammarError, InvalidParameterError
from llamarun.grammar import json_object_grammar

TEMPLATES = Path(__file__).parent / "templates"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
USER = [{"role": "user", "content": "Weather in Paris?"}]


def chatml() -> ChatTemplate:
    return ChatTemplate.builtin("chatml")


def qwen() -> ChatTemplate:
    return ChatTemplate((TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(), trusted=True)


def stream(splitter: ThinkingSplitter, pieces: list[str]) -> tuple[str, str, list[tuple[str, str]]]:
    deltas = [splitter.feed(p) for p in pieces] + [splitter.flush()]
    return "".join(d[0] for d in deltas), "".join(d[1] for d in deltas), deltas


@pytest.mark.parametrize(
    ("text", "in_thinking", "expected"),
    [
        ("<think>\nstep 1\nstep 2\n</think>\n\nAnswer.", False, ("step 1\nstep 2", "Answer.")),
        ("no thinking here", False, ("", "no thinking here")),
        ("reasoning</think>Answer", True, ("reasoning", "Answer")),
        ("<think>unfinished thought", False, ("unfinished thought", "")),
        ("<think></think>Answer", False, ("", "Answer")),
        ("a<think>b</think>c<think>d</think>e", False, ("bd", "ace")),
        ("x < y and </thin k> is not a marker", False, ("", "x < y and </thin k> is not a marker")),
    ],
)
def test_split_thinking(text: str, in_thinking: bool, expected: tuple[str, str]) -> None:
    assert split_thinking(text, in_thinking=in_thinking) == expected


@pytest.mark.parametrize("seed", range(20))
def test_streaming_matches_whole_and_never_emits_half_a_marker(seed: int) -> None:
    text = "<think>\nFirst I <b>consider</b> 2 < 3.\nThen </thi more.\n</think>\n\nThe answer: <think is a word."
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 12))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    thinking, content, deltas = stream(ThinkingSplitter(), pieces)
    assert (thinking, content) == split_thinking(text)
    assert thinking == "First I <b>consider</b> 2 < 3.\nThen </thi more." and content == "The answer: <think is a word."
    for t, c in deltas:
        for marker in ("<think>", "</think>"):
            assert marker not in t and marker not in c


def test_token_by_token_stream() -> None:
    pieces = ["<", "think", ">", "\n", "hm", "m", "\n", "</", "think", ">", "\n\n", "Hi", "!"]
    thinking, content, deltas = stream(ThinkingSplitter(), pieces)
    assert (thinking, content) == ("hmm", "Hi!")
    assert all(not d[0].strip() or d[0] in ("hm", "m") for d in deltas)


@pytest.mark.parametrize(
    ("pieces", "in_thinking", "expected"),
    [
        (["<think>", "a", " b", "</think>", "\n\n", "Answer"], False, 4),  # markers are single tokens
        (["<th", "ink>", "a", "</", "think", ">", "Answer"], False, 5),  # split: from the token completing <think>
        (["Sure. ", "<think>x", "y</think>The", " end"], False, 2),  # text before; markers inside pieces
        (["<think>x</think>", "Answer"], False, 1),  # one token opens and closes it
        (["a", " b", "</think>", "Answer"], True, 3),  # the prompt opened it (DeepSeek-R1)
        (["<think>", "a", " b"], False, 3),  # cut before it closed
        (["no", " thinking"], False, 0),
        ([], True, 0),
    ],
)
def test_thinking_token_count(pieces: list[str], in_thinking: bool, expected: int) -> None:
    assert thinking_token_count([p.encode() for p in pieces], in_thinking=in_thinking) == expected


def test_other_marker_pairs() -> None:
    assert split_thinking("[THINK]plan[/THINK]go", "[THINK]", "[/THINK]") == ("plan", "go")
    assert thinking_markers("... [/THINK] ...") == ("[THINK]", "[/THINK]")
    assert thinking_markers("{{ '</think>' }}") == ("<think>", "</think>")
    assert thinking_markers("plain") is None and thinking_markers(None) is None
    with pytest.raises(ValueError):
        ThinkingSplitter("", "x")


def test_plan_plain_chat() -> None:
    plan = prepare_chat(chatml(), USER)
    assert plan.grammar is None and not plan.parses_tool_calls
    assert plan.parse("  Sunny.  ").content == "Sunny."
    assert plan.parse("{}").to_message() == {"role": "assistant", "content": "{}"}


def test_plan_response_formats_and_grammar() -> None:
    assert prepare_chat(chatml(), USER, response_format={"type": "json_object"}).grammar == json_object_grammar()
    assert prepare_chat(chatml(), USER, response_format="json").grammar == json_object_grammar()
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    assert "ok" in (prepare_chat(chatml(), USER, response_format=schema).grammar or "")
    assert prepare_chat(chatml(), USER, grammar='root ::= "yes" | "no"').grammar == 'root ::= "yes" | "no"'
    with pytest.raises(GrammarError):
        prepare_chat(chatml(), USER, grammar="root ::= " + "(" * 60_000)
    with pytest.raises(InvalidParameterError):
        prepare_chat(chatml(), USER, grammar='root ::= "a"', response_format="json")


def test_plan_tools_auto_required_named_none() -> None:
    auto = prepare_chat(chatml(), USER, tools=TOOLS)
    assert auto.grammar is None and auto.parses_tool_calls and "get_weather" in auto.prompt
    out = auto.parse('{"name": "get_weather", "arguments": {"city": "Paris"}}')
    assert out.content == "" and out.tool_calls[0].arguments == {"city": "Paris"}
    assert out.to_message()["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert auto.parse("It is sunny.").tool_calls == ()
    required = prepare_chat(chatml(), USER, tools=TOOLS, tool_choice="required")
    assert required.grammar and '"\\"get_weather\\""' in required.grammar
    named = prepare_chat(chatml(), USER, tools=TOOLS, tool_choice={"type": "function",
                                                                    "function": {"name": "get_weather"}})
    assert named.grammar and named.tool_choice.name == "get_weather"
    none = prepare_chat(chatml(), USER, tools=TOOLS, tool_choice="none")
    assert "get_weather" not in none.prompt and not none.parses_tool_calls
    assert none.parse('{"name": "get_weather", "arguments": {"city": "X"}}').tool_calls == ()


def test_plan_uses_the_templates_tool_format() -> None:
    plan = prepare_chat(qwen(), USER, tools=TOOLS, tool_choice="required")
    assert plan.tool_format is ToolCallFormat.HERMES and "<tool_call>" in (plan.grammar or "")
    assert "# Tools" in plan.prompt


def test_stream_parser_plain_and_thinking() -> None:
    template = ChatTemplate((TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text(), trusted=True)
    plan = prepare_chat(template, USER)
    parser = plan.stream_parser()
    deltas = [parser.feed(p) for p in ["<think>", "\nWhy", " blue", "?\n</", "think>\n\n", "Rayleigh", " scattering."]]
    last, whole = parser.finish()
    assert "".join(d.thinking for d in deltas) + last.thinking == "Why blue?" == whole.thinking
    assert "".join(d.content for d in deltas) + last.content == "Rayleigh scattering." == whole.content


def test_stream_parser_holds_back_tool_calls() -> None:
    plan = prepare_chat(qwen(), USER, tools=TOOLS)
    parser = plan.stream_parser()
    sent = "".join(parser.feed(p).content for p in ["Let me check.", "\n<tool", "_call>\n{\"name\": \"get_weather\", ",
                                                      "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"])
    last, whole = parser.finish()
    assert "<tool" not in sent and sent.strip() == "Let me check."
    assert whole.content == "Let me check." and whole.tool_calls[0].name == "get_weather"
    assert last.content == ""

    parser = prepare_chat(chatml(), USER, tools=TOOLS).stream_parser()
    sent = "".join(parser.feed(p).content for p in [" ", '{"name": "get_weather",', ' "arguments": {"city": "X"}}'])
    last, whole = parser.finish()
    assert sent == "" and last.content == "" and whole.tool_calls[0].arguments == {"city": "X"}

    parser = prepare_chat(chatml(), USER, tools=TOOLS).stream_parser()
    sent = "".join(parser.feed(p).content for p in ["It is ", "sunny ", "in Paris."])
    last, whole = parser.finish()
    assert sent + last.content == "It is sunny in Paris." == whole.content and whole.tool_calls == ()

    parser = prepare_chat(chatml(), USER, tools=TOOLS).stream_parser()
    sent = "".join(parser.feed(p).content for p in ['{"not": "a call"}'])
    last, whole = parser.finish()
    assert sent == "" and last.content == '{"not": "a call"}' == whole.content
