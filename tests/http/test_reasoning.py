"""Reasoning text end to end: the Responses API's ``reasoning`` item and the Messages API's ``thinking``
blocks, whole and streamed, through the official ``openai`` and ``anthropic`` clients against a real
``llamarun serve``.

SmolLM2 does not think, and a random-weight model writes ``<think>``...``</think>`` only by luck, so
these tests serve models written by :func:`tinymodel.write_scripted_gguf`: llama GGUFs whose weights
are a bigram table (one-hot embeddings, zero attention and feed-forward, an output matrix mapping each
token to the next of a script), so that llama.cpp, whatever the sampler, writes exactly what a
reasoning model writes. A grammar would have done it too, but neither API can carry one (and a
Modelfile cannot set one); the scripted weights keep the request exactly what a client sends.

- ``qwen3``: Qwen3's own chat template, ``<think>``/``</think>`` as single user-defined tokens as in
  Qwen3's vocabulary; it writes ``<think>\\nTHOUGHT\\n</think>\\n\\nANSWER``.
- ``r1``: the DeepSeek-R1-Distill template of tests/chat/templates, whose generation prompt opens
  ``<think>\\n`` when thinking is asked for (the answer starts inside the reasoning); it writes
  its reasoning, ``</think>``, and stops: an answer of reasoning only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from llamarun.store import ModelStore
from serve_helpers import ROOT, Server, start_server
from tinymodel import write_scripted_gguf

pytestmark = pytest.mark.timeout(300)

TEMPLATES = ROOT / "tests" / "chat" / "templates"
MARKERS = ("<think>", "</think>")
QWEN3_SCRIPT = ["<think>", "\nThe user asks", " for two plus two", ".\n", "</think>", "\n\n", "Four", "."]
QWEN3_REASONING_TOKENS = 5  # <think> to </think>
THOUGHT, ANSWER = "The user asks for two plus two.", "Four."
R1_SCRIPT = ["Let me count", ":", " one", ",", " two", ".", "</think>"]
R1_THOUGHT = "Let me count: one, two."
R1_SPECIALS = ["<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜end▁of▁sentence｜>", "<｜Assistant｜>"]
QUESTION = "What is two plus two?"
THINK = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    files = tmp_path_factory.mktemp("thinkers")
    qwen3 = write_scripted_gguf(files / "qwen3.gguf", QWEN3_SCRIPT, user_defined=MARKERS,
                                chat_template=(TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text())
    r1 = write_scripted_gguf(files / "r1.gguf", R1_SCRIPT, user_defined=MARKERS, specials=R1_SPECIALS,
                             chat_template=(TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja").read_text())
    home = tmp_path_factory.mktemp("thinkers-store")
    store = ModelStore(home)
    store.create("qwen3", qwen3)
    store.create("r1", r1)
    server = start_server(home, "--ctx", "512", "--parallel", "2", "--keep-alive", "-1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oai(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=120)


def runs(kinds: list[str]) -> list[str]:
    """``kinds`` with each run of one delta event type collapsed into one."""
    return [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1] or not k.endswith("delta")]


def no_marker_in(pieces: list[str]) -> None:
    """No streamed piece holds a thinking marker or a part of one."""
    for piece in pieces:
        assert not any(m[:n] in piece for m in MARKERS for n in range(2, len(m) + 1)), pieces


# -- OpenAI Responses -------------------------------------------------------------------------------

ITEM = ["response.output_item.added", "response.content_part.added"]
REASONING = [*ITEM, "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
             "response.output_item.done"]
MESSAGE = [*ITEM, "response.output_text.delta", "response.output_text.done", "response.content_part.done",
           "response.output_item.done"]
HEAD = ["response.created", "response.in_progress"]


def texts(output: list) -> list[tuple[str, str, str]]:
    """(type, status, text) of each output item."""
    return [(i.type, i.status, "".join(part.text for part in i.content)) for i in output]


def out_tokens(reply: object) -> tuple[int, int]:
    """(output tokens, of them reasoning) of a response (its input tokens differ with what is cached)."""
    usage = reply.usage  # type: ignore[attr-defined]
    return usage.output_tokens, usage.output_tokens_details.reasoning_tokens


def check_stream(events: list, output: list) -> None:
    """The items the stream announced, filled and closed are ``output``, in order; each event names its
    item, output index and content part; the deltas add up to each item's text."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.item for e in events if e.type == "response.output_item.done"] == output
    for index, item in enumerate(output):
        mine = [e for e in events if getattr(e, "output_index", None) == index]
        added = mine[0]
        assert added.type == "response.output_item.added" and added.item.id == item.id
        assert added.item.type == item.type and added.item.status == "in_progress" and not added.item.content
        assert all(e.item_id == item.id and e.content_index == 0 for e in mine[1:-1])
        part_type = "reasoning_text" if item.type == "reasoning" else "output_text"
        assert mine[1].part.type == part_type and mine[1].part.text == ""
        text = item.content[0].text
        kind = "reasoning_text" if item.type == "reasoning" else "output_text"
        deltas = [e.delta for e in mine if e.type == f"response.{kind}.delta"]
        assert "".join(deltas) == text
        no_marker_in(deltas)
        done = next(e for e in mine if e.type == f"response.{kind}.done")
        assert done.text == text and mine[-2].type == "response.content_part.done" and mine[-2].part.text == text


def test_whole_response_has_the_reasoning_item_before_the_message(oai: openai.OpenAI) -> None:
    reply = oai.responses.create(model="qwen3", input=QUESTION, max_output_tokens=40)
    assert reply.status == "completed"
    assert texts(reply.output) == [("reasoning", "completed", THOUGHT), ("message", "completed", ANSWER)]
    reasoning, message = reply.output
    assert reasoning.id.startswith("rs_") and reasoning.summary == []
    assert [part.type for part in reasoning.content] == ["reasoning_text"]
    assert message.role == "assistant" and [part.type for part in message.content] == ["output_text"]
    assert reply.output_text == ANSWER  # the client's output_text reads messages only
    assert reply.usage.output_tokens == len(QWEN3_SCRIPT)
    assert reply.usage.output_tokens_details.reasoning_tokens == QWEN3_REASONING_TOKENS
    assert oai.responses.retrieve(reply.id).output == reply.output


def test_streamed_reasoning_then_message(oai: openai.OpenAI) -> None:
    whole = oai.responses.create(model="qwen3", input=QUESTION, max_output_tokens=40)
    events = list(oai.responses.create(model="qwen3", input=QUESTION, max_output_tokens=40, stream=True))
    assert runs([e.type for e in events]) == [*HEAD, *REASONING, *MESSAGE, "response.completed"]
    final = events[-1].response
    check_stream(events, final.output)
    assert texts(final.output) == texts(whole.output) and out_tokens(final) == out_tokens(whole)
    with oai.responses.stream(model="qwen3", input=QUESTION, max_output_tokens=40) as stream:
        for _ in stream:
            pass
        helped = stream.get_final_response()
    assert texts(helped.output) == texts(whole.output) and helped.output_text == ANSWER


def test_reasoning_only_answer_still_ends_with_a_message(oai: openai.OpenAI) -> None:
    """The model reasons and stops without an answer: whole and streamed, the output is the reasoning
    item and an empty message (the stream lacked the message before 5ee5cd2)."""
    ask = {"model": "r1", "input": QUESTION, "max_output_tokens": 40, "reasoning": {"effort": "high"}}
    whole = oai.responses.create(**ask)
    assert whole.status == "completed" and whole.output_text == ""
    assert texts(whole.output) == [("reasoning", "completed", R1_THOUGHT), ("message", "completed", "")]
    assert whole.usage.output_tokens == whole.usage.output_tokens_details.reasoning_tokens == len(R1_SCRIPT)
    events = list(oai.responses.create(**ask, stream=True))
    empty_message = [*ITEM, "response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert runs([e.type for e in events]) == [*HEAD, *REASONING, *empty_message, "response.completed"]
    final = events[-1].response
    check_stream(events, final.output)
    assert texts(final.output) == texts(whole.output) and out_tokens(final) == out_tokens(whole)


def test_answer_cut_inside_the_reasoning(oai: openai.OpenAI) -> None:
    """``max_output_tokens`` ends the answer while it reasons: the reasoning so far, an empty message,
    both ``incomplete`` in the whole answer and in the stream's done events alike."""
    ask = {"model": "qwen3", "input": QUESTION, "max_output_tokens": 3}
    thought = "".join(QWEN3_SCRIPT[1:3]).strip()
    whole = oai.responses.create(**ask)
    assert whole.status == "incomplete" and whole.incomplete_details.reason == "max_output_tokens"
    assert texts(whole.output) == [("reasoning", "incomplete", thought), ("message", "incomplete", "")]
    assert whole.usage.output_tokens == whole.usage.output_tokens_details.reasoning_tokens == 3
    events = list(oai.responses.create(**ask, stream=True))
    assert events[-1].type == "response.incomplete"
    final = events[-1].response
    check_stream(events, final.output)
    assert texts(final.output) == texts(whole.output) and out_tokens(final) == out_tokens(whole)


def test_reasoning_items_go_back_as_input(oai: openai.OpenAI) -> None:
    """A client keeping the context itself sends the reasoning item back as it got it; a stored response's
    reasoning is part of its conversation for ``previous_response_id``."""
    first = oai.responses.create(model="qwen3", input=QUESTION, max_output_tokens=40)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    again = oai.responses.create(model="qwen3", max_output_tokens=40,
                                 input=[{"role": "user", "content": QUESTION}, *items,
                                        {"role": "user", "content": "And three plus three?"}])
    chained = oai.responses.create(model="qwen3", input="And three plus three?", previous_response_id=first.id,
                                   max_output_tokens=40)
    for reply in (again, chained):
        assert reply.status == "completed" and texts(reply.output) == texts(first.output)
    assert chained.usage.input_tokens == again.usage.input_tokens  # the same conversation either way


# -- Anthropic Messages -----------------------------------------------------------------------------

def block_texts(content: list) -> list[tuple[str, str]]:
    return [(b.type, b.thinking if b.type == "thinking" else b.text) for b in content]


def raw_events(claude: anthropic.Anthropic, **ask: object) -> list:
    return [e for e in claude.messages.create(**ask, stream=True) if e.type != "ping"]  # type: ignore[call-overload]


def test_thinking_block_then_text(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(model="qwen3", max_tokens=40, messages=[{"role": "user", "content": QUESTION}])
    assert block_texts(reply.content) == [("thinking", THOUGHT), ("text", ANSWER)]
    assert isinstance(reply.content[0].signature, str)
    assert reply.stop_reason == "end_turn" and reply.usage.output_tokens == len(QWEN3_SCRIPT)


def test_streamed_thinking_deltas(claude: anthropic.Anthropic) -> None:
    ask = {"model": "qwen3", "max_tokens": 2048, "thinking": THINK, "messages": [{"role": "user", "content": QUESTION}]}
    events = raw_events(claude, **ask)
    shape = runs([e.type if e.type != "content_block_delta" else f"{e.delta.type}" for e in events])
    assert shape == ["message_start", "content_block_start", "thinking_delta", "signature_delta", "content_block_stop",
                     "content_block_start", "text_delta", "content_block_stop", "message_delta", "message_stop"]
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "thinking"), (1, "text")]
    assert starts[0].content_block.thinking == "" and starts[0].content_block.signature == ""
    deltas = [e for e in events if e.type == "content_block_delta"]
    thinking = [e.delta.thinking for e in deltas if e.delta.type == "thinking_delta"]
    text = [e.delta.text for e in deltas if e.delta.type == "text_delta"]
    assert "".join(thinking) == THOUGHT and "".join(text) == ANSWER
    assert {e.index for e in deltas if e.delta.type in ("thinking_delta", "signature_delta")} == {0}
    no_marker_in(thinking + text)
    with claude.messages.stream(**ask) as stream:  # type: ignore[arg-type]
        helper_thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert helper_thinking == THOUGHT
    assert block_texts(final.content) == [("thinking", THOUGHT), ("text", ANSWER)]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == len(QWEN3_SCRIPT)


def test_reasoning_only_answer_is_one_thinking_block(claude: anthropic.Anthropic) -> None:
    ask = {"model": "r1", "max_tokens": 2048, "thinking": THINK, "messages": [{"role": "user", "content": QUESTION}]}
    whole = claude.messages.create(**ask)  # type: ignore[arg-type]
    assert block_texts(whole.content) == [("thinking", R1_THOUGHT)] and whole.stop_reason == "end_turn"
    events = raw_events(claude, **ask)
    shape = runs([e.type if e.type != "content_block_delta" else f"{e.delta.type}" for e in events])
    assert shape == ["message_start", "content_block_start", "thinking_delta", "signature_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert "".join(e.delta.thinking for e in events if e.type == "content_block_delta"
                   and e.delta.type == "thinking_delta") == R1_THOUGHT


def test_thinking_display_omitted(claude: anthropic.Anthropic) -> None:
    """``display: omitted``: the thinking block is there, its text is not (whole, and no thinking_delta)."""
    ask = {"model": "qwen3", "max_tokens": 2048, "thinking": {**THINK, "display": "omitted"},
           "messages": [{"role": "user", "content": QUESTION}]}
    whole = claude.messages.create(**ask)  # type: ignore[arg-type]
    assert block_texts(whole.content) == [("thinking", ""), ("text", ANSWER)]
    events = raw_events(claude, **ask)
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "thinking_delta" not in deltas and deltas[0] == "signature_delta"


def test_thinking_blocks_go_back_in_the_next_turn(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(model="qwen3", max_tokens=40, messages=[{"role": "user", "content": QUESTION}])
    history = [{"role": "user", "content": QUESTION},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": "And three plus three?"}]
    second = claude.messages.create(model="qwen3", max_tokens=40, messages=history)  # type: ignore[arg-type]
    assert block_texts(second.content) == [("thinking", THOUGHT), ("text", ANSWER)]
