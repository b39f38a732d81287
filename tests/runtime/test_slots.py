"""Slot assignment with one KV stream per slot: packed sequence ids, and moves that keep the KV exact."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from llamarun.engine import Batch, Context, Model
from llamarun.runtime.slots import SlotTable, common_prefix
from llamarun.types import ContextOptions

PROMPTS = [[10, 11, 12, 13, 14], [20, 21, 22, 23], [30, 31, 32, 33, 34, 35]]


@pytest.fixture
def ctx(tiny_model_path):
    with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=4 * 128, n_seq_max=4, n_threads=2)) as c:
        yield c


def fill(ctx: Context, table: SlotTable, prompt: list[int]):
    slot, reused = table.acquire(prompt)
    with Batch(128) as batch:
        batch.add_tokens(prompt[reused:], reused, slot.seq_id)
        ctx.decode(batch)
    table.commit(slot, prompt[reused:])
    return slot


@pytest.mark.parametrize("length", [0, 1, 255, 256, 257, 600, 1024])
def test_common_prefix_in_blocks_and_token_by_token(length):
    base = list(range(1024))
    for cut in sorted({0, 1, length // 2, max(0, length - 1), length}):
        if cut > length:
            continue
        other = base[:length]
        if cut < length:
            other[cut] = -1
        assert common_prefix(base[:length], other) == cut
        assert common_prefix(other, base) == cut  # shorter one first
        assert common_prefix(tuple(other), base[:length]) == cut  # mixed types: token by token


def test_new_requests_take_the_lowest_free_slot(ctx):
    table = SlotTable(ctx, 4, unified=False, min_copy=16)
    slots = [fill(ctx, table, p) for p in PROMPTS]
    assert [s.seq_id for s in slots] == [0, 1, 2]
    table.release(slots[0])
    assert fill(ctx, table, [40, 41]).seq_id == 0
    assert table.gap_move() is None


def test_a_gap_is_closed_by_moving_the_last_busy_slot_and_its_kv_is_exact(ctx):
    table = SlotTable(ctx, 4, unified=False, min_copy=16)
    slots = [fill(ctx, table, p) for p in PROMPTS]
    table.release(slots[1])
    src, dst = table.gap_move()
    assert (src.seq_id, dst.seq_id) == (2, 1)
    table.move(src, dst)
    assert dst.busy and not src.busy and dst.cached == src.cached == PROMPTS[2]
    assert table.gap_move() is None
    with Batch(8) as batch:  # the same next token on the moved sequence and on the copy left behind
        first = batch.add(99, len(PROMPTS[2]), dst.seq_id, True)
        second = batch.add(99, len(PROMPTS[2]), src.seq_id, True)
        ctx.decode(batch)
        assert np.array_equal(ctx.logits(first), ctx.logits(second))


def test_unified_pool_needs_no_moves(ctx):
    table = SlotTable(ctx, 4, unified=True, min_copy=16)
    slots = [fill(ctx, table, p) for p in PROMPTS]
    table.release(slots[1])
    assert table.gap_move() is None



def _greedy(prompt: list[int], events: list) -> Any:
    from llamarun.runtime import GenerationRequest
    from llamarun.runtime.sequence import ActiveRequest
    from llamarun.types import SamplingParams

    spec = GenerationRequest(prompt=prompt, max_tokens=2, sampling=SamplingParams(temperature=0), ignore_eos=True)
    return ActiveRequest(spec, events.append)


@contextlib.contextmanager
def _engine_loop(model_path, min_prefix_copy: int) -> Iterator[Any]:
    """An EngineLoop over 4 per-slot KV streams of 128 cells, stepped by the test itself."""
    from llamarun.runtime import RuntimeConfig
    from llamarun.runtime.loop import EngineLoop
    from llamarun.runtime.metrics import RuntimeMetrics

    with Model(model_path) as model:
        config = RuntimeConfig(n_ctx=128, n_slots=4, n_threads=2, min_prefix_copy=min_prefix_copy)
        loop = EngineLoop(model, config, RuntimeMetrics())
        try:
            yield loop
        finally:
            loop.close()


def _admit(loop: Any, prompts: list[list[int]], *, to_the_end: bool = True) -> list[Any]:
    """Add greedy requests for ``prompts`` in one go; one step, or steps until all are done."""
    reqs = [_greedy(p, []) for p in prompts]
    for r in reqs:
        loop.add(r)
    loop.step()
    while to_the_end and loop.has_work():
        loop.step()
    return reqs


def test_requests_admitted_together_take_slots_in_order_of_prompt_left_to_compute(tiny_model_path):
    """Rising lengths along the slots let llama.cpp compute a mixed prefill in one pass per length."""
    with _engine_loop(tiny_model_path, min_prefix_copy=1) as loop:
        reqs = _admit(loop, [list(range(200, 200 + n)) for n in (9, 3, 12, 5)], to_the_end=False)
        assert [r.slot for r in reqs] == [2, 0, 3, 1]
        while loop.has_work():
            loop.step()
        # what is left to compute decides, not the prompt's length: 14 tokens of which slot 3
        # caches 12, against 4 tokens that no slot caches
        reqs = _admit(loop, [[40, 41, 42, 43], list(range(200, 212)) + [5, 6]], to_the_end=False)
        assert [r.slot for r in reqs] == [1, 0] and [r.cached_tokens for r in reqs] == [0, 12]
        while loop.has_work():
            loop.step()


def test_conversations_continued_in_one_step_keep_their_caches(tiny_model_path):
    """Two finished conversations continue in the step a new one arrives: the admission order puts
    the new one first, and it must not take (and cut back) a slot another request's prefix is in."""
    convo_c, convo_a = list(range(10, 105)), list(range(150, 188))
    with _engine_loop(tiny_model_path, min_prefix_copy=3) as loop:
        _admit(loop, [convo_c, convo_a])
        new, a, c = _admit(loop, [[7, 8, 9], convo_a + [1, 2], convo_c + [3, 4, 5, 6, 7]])
    assert new.cached_tokens == 0 and a.cached_tokens >= 38 and c.cached_tokens >= 95


def test_two_users_taking_turns_both_keep_their_conversations_cached(tiny_model_path):
    alice, bob = list(range(10, 60)), list(range(100, 140))
    turns = [alice, bob, alice + [1, 2, 3], bob + [4, 5], alice + [1, 2, 3, 6, 7]]
    with _engine_loop(tiny_model_path, min_prefix_copy=3) as loop:
        # one at a time: each turn finds the other user's cache in slot 0
        cached = [_admit(loop, [prompt])[0].cached_tokens for prompt in turns]
    assert cached[:2] == [0, 0] and cached[2] >= 50 and cached[3] >= 40 and cached[4] >= 53


def test_copy_threshold_grows_with_the_stream_and_is_one_in_a_unified_pool(tiny_model_path):
    from llamarun.runtime.slots import copy_threshold

    with Model(tiny_model_path) as model:
        info = model.info
        small, large = (copy_threshold(info, cells, unified=False) for cells in (128, 4096))
        assert 1 <= small < large
        assert copy_threshold(info, 4096, unified=True) == 1


def _idle_caches(ctx: Context, table: SlotTable, *prompts: list[int]) -> None:
    """Slots 0, 1, ... computed for ``prompts`` and then left idle: finished requests' prefix caches."""
    for slot in [fill(ctx, table, p) for p in prompts]:
        table.release(slot)


def _finish(ctx: Context, table: SlotTable, slot, prompt: list[int], reused: int) -> np.ndarray:
    """Decode the rest of ``prompt`` in ``slot`` after ``reused`` cached tokens; the last logits."""
    with Batch(256) as batch:
        index = batch.add_tokens(prompt[reused:], reused, slot.seq_id, logits_last=True)
        ctx.decode(batch)
        out = ctx.logits(index)
    table.commit(slot, prompt[reused:])
    return out


@pytest.mark.parametrize("unified", [False, True])
def test_prompts_admitted_together_keep_every_cached_prefix(tiny_model_path, unified):
    """Two conversations continue in the step a new one arrives, the new one first (as the admission
    order puts it): neither loses its cache to the other, and the reused KV is the real one."""
    convo_c, convo_a, new = list(range(10, 105)), list(range(150, 188)), [7, 8, 9]
    options = ContextOptions(n_ctx=4 * 128, n_seq_max=4, n_threads=2, kv_unified=unified)
    with Model(tiny_model_path) as model, Context(model, options) as ctx:
        table = SlotTable(ctx, 4, unified=unified, min_copy=3)
        _idle_caches(ctx, table, convo_c, convo_a)
        prompts = [new, convo_a + [1, 2], convo_c + [3, 4, 5, 6, 7]]
        got = table.acquire_all(prompts)
        assert [reused for _, reused in got] == [0, 38, 95]
        assert len({slot.seq_id for slot, _ in got}) == 3
        if not unified:
            assert sorted(slot.seq_id for slot, _ in got) == [0, 1, 2]  # busy ids stay packed
        logits = [_finish(ctx, table, slot, p, reused) for (slot, reused), p in zip(got, prompts)]
        (fresh, _), = table.acquire_all([[5]])  # the last slot: the same two decodes from scratch
        table.clear(fresh)
        _finish(ctx, table, fresh, convo_c, 0)
        np.testing.assert_allclose(_finish(ctx, table, fresh, prompts[2], 95), logits[2], atol=1e-4)


def test_prompts_sharing_one_cached_prefix_all_reuse_it(ctx):
    system = list(range(100, 130))
    table = SlotTable(ctx, 4, unified=False, min_copy=3)
    _idle_caches(ctx, table, system)
    got = table.acquire_all([system + [1], system + [2, 3], system + [4]])
    assert [(slot.seq_id, reused) for slot, reused in got] == [(0, 30), (1, 30), (2, 30)]


def test_a_new_prompt_on_an_idle_cache_moves_that_cache_aside(ctx):
    """Per-slot streams: a new prompt takes the lowest free slot (busy ids stay packed); the finished
    conversation cached there moves to an empty slot, and its next turn still reuses it, exactly."""
    convo = list(range(10, 105))
    table = SlotTable(ctx, 4, unified=False, min_copy=3)
    _idle_caches(ctx, table, convo)
    (slot, reused), = table.acquire_all([[7, 8, 9]])
    assert (slot.seq_id, reused) == (0, 0)
    _finish(ctx, table, slot, [7, 8, 9], 0)
    turn = convo + [1, 2]
    (slot, reused), = table.acquire_all([turn])
    assert (slot.seq_id, reused) == (1, 95)
    logits = _finish(ctx, table, slot, turn, reused)
    (fresh, _), = table.acquire_all([[5]])
    table.clear(fresh)
    _finish(ctx, table, fresh, convo, 0)
    np.testing.assert_allclose(_finish(ctx, table, fresh, turn, 95), logits, atol=1e-4)


def test_an_idle_cache_is_not_moved_when_another_slot_holds_it(ctx):
    system = list(range(100, 130))
    table = SlotTable(ctx, 4, unified=False, min_copy=3)
    first, second = fill(ctx, table, system), fill(ctx, table, system + [1, 2, 3])
    table.release(first)
    (slot, _), = table.acquire_all([[7, 8, 9]])
    assert slot is first and [len(s.cached) for s in table.slots] == [0, 33, 0, 0]
    assert second.busy


def test_an_idle_cache_is_only_moved_where_no_gap_move_will_copy(ctx):
    """Busy slot 3 above idle 0..2: the next gap move copies slot 3 into the lowest free slot, so a
    cache moved there would be overwritten at once; it stays where it is (and is cut back)."""
    table = SlotTable(ctx, 4, unified=False, min_copy=3)
    convo = list(range(10, 60))
    slots = [fill(ctx, table, p) for p in (convo, [1, 2], [3, 4], list(range(100, 120)))]
    for slot in slots[:3]:
        table.release(slot)
    (slot, _), = table.acquire_all([[7, 8, 9]])
    assert slot.seq_id == 0 and [len(s.cached) for s in table.slots] == [0, 2, 2, 20]
    assert table.gap_move() == (table.slots[3], table.slots[1])
