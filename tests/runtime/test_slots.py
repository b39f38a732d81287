"""Slot assignment with one KV stream per slot: packed sequence ids, and moves that keep the KV exact."""

from __future__ import annotations

import numpy as np
import pytest

from llamarun.engine import Batch, Context, Model
from llamarun.runtime.slots import SlotTable
from llamarun.types import ContextOptions

PROMPTS = [[10, 11, 12, 13, 14], [20, 21, 22, 23], [30, 31, 32, 33, 34, 35]]


@pytest.fixture
def ctx(tiny_model_path):
    with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=4 * 128, n_seq_max=4, n_threads=2)) as c:
        yield c


def fill(ctx: Context, table: SlotTable, prompt: list[int]):
    slot, reused = table.acquire(prompt)
    with Batch(64) as batch:
        batch.add_tokens(prompt[reused:], reused, slot.seq_id)
        ctx.decode(batch)
    table.commit(slot, prompt[reused:])
    return slot


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
