"""stream_interval: the first token at once, then chunks of N tokens, the rest at the end; nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from llamarun.errors import InvalidParameterError
from llamarun.runtime import AsyncClient, GenerationRequest, Runtime, RuntimeConfig, SyncClient
from llamarun.runtime.sequence import ActiveRequest
from llamarun.types import Chunk, FinishReason, GenerationResult, SamplingParams

SAMPLED = SamplingParams(temperature=0.9, seed=11)


def req(n: int, **kw) -> GenerationRequest:
    return GenerationRequest(prompt="hello world", max_tokens=n, sampling=SAMPLED, ignore_eos=True, **kw)


@pytest.fixture(scope="module")
def runtime(tiny_model_path):
    rt = Runtime(tiny_model_path, RuntimeConfig(n_ctx=512, n_slots=2, n_threads=2))
    yield rt
    rt.close()


def _chunks(runtime: Runtime, spec: GenerationRequest) -> tuple[list[Chunk], object]:
    with SyncClient(runtime).stream(spec) as stream:
        chunks = list(stream)
    return chunks, stream.result


def test_first_token_alone_then_chunks_of_n_and_the_rest_at_the_end(runtime) -> None:
    every, whole = _chunks(runtime, req(14))
    grouped, result = _chunks(runtime, req(14, stream_interval=5))
    assert [len(c.token_ids) for c in every if c.token_ids] == [1] * 14
    assert [len(c.token_ids) for c in grouped if c.token_ids] == [1, 5, 5, 3]
    assert "".join(c.text for c in grouped) == "".join(c.text for c in every) == result.text == whole.text
    assert tuple(t for c in grouped for t in c.token_ids) == result.token_ids == whole.token_ids
    assert grouped[-1].finish_reason is FinishReason.LENGTH and not grouped[-1].token_ids


def test_logprobs_travel_with_their_tokens(runtime) -> None:
    grouped, result = _chunks(runtime, req(9, stream_interval=4, logprobs=2))
    logprobs = [lp for c in grouped for lp in c.logprobs]
    assert [lp.token for lp in logprobs] == list(result.token_ids)
    assert all(len(c.logprobs) == len(c.token_ids) for c in grouped)


def test_an_interval_longer_than_the_output_sends_the_first_token_and_then_everything(runtime) -> None:
    grouped, result = _chunks(runtime, req(7, stream_interval=1000))
    assert [len(c.token_ids) for c in grouped if c.token_ids] == [1, 6]
    assert "".join(c.text for c in grouped) == result.text


def test_async_client_gets_the_same_chunks(runtime) -> None:
    async def collect() -> list[Chunk]:
        return [c async for c in AsyncClient(runtime).stream(req(10, stream_interval=3))]

    chunks = asyncio.run(collect())
    assert [len(c.token_ids) for c in chunks if c.token_ids] == [1, 3, 3, 3]


def _active(every: int) -> tuple[ActiveRequest, list]:
    events: list = []
    return ActiveRequest(req(8, stream_interval=every), events.append), events


def test_output_held_before_an_error_is_sent_before_the_error() -> None:
    active, events = _active(4)
    for i, text in enumerate("ABC"):
        active.emit(text, (i,))
    failure = RuntimeError("boom")
    active.finish(FinishReason.ERROR, 0.0, failure)
    assert [e.text for e in events[:-1]] == ["A", "BC"] and events[-1] is failure


def test_tokens_without_text_do_not_start_the_grouping() -> None:
    """Part of a UTF-8 character, or a held stop-string prefix, is not the first text: until some text
    is out every token goes at once, so grouping never delays the first visible text."""
    active, events = _active(8)
    active.emit("", (1,))
    active.emit("", (2,))
    active.emit("w", (3,))
    for i in range(4, 8):
        active.emit("x", (i,))
    assert [(e.text, e.token_ids) for e in events] == [("", (1,)), ("", (2,)), ("w", (3,))]
    active.finish(FinishReason.LENGTH, 0.0)
    assert events[3].text == "xxxx" and events[3].token_ids == (4, 5, 6, 7)
    assert isinstance(events[-1], GenerationResult) and events[-1].text == "wxxxx"


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "4", 1 << 25])
def test_out_of_range_interval_is_a_typed_error(value) -> None:
    with pytest.raises(InvalidParameterError) as info:
        req(4, stream_interval=value)
    assert info.value.field == "stream_interval"


def test_library_option(tiny_model_path) -> None:
    import llamarun

    with llamarun.load(tiny_model_path, n_ctx=256, n_slots=1, n_threads=2) as model:
        chunks = list(model.generate("hello", max_tokens=9, stream=True, stream_interval=4, ignore_eos=True, seed=2))
        whole = model.generate("hello", max_tokens=9, ignore_eos=True, seed=2)
    assert [len(c.token_ids) for c in chunks if c.token_ids] == [1, 4, 4]
    assert "".join(c.text for c in chunks) == whole.text
