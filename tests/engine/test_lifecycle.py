"""Ownership of native handles: close is idempotent, order-independent, and use after close is typed."""

from __future__ import annotations

import gc

import psutil
import pytest

from llamarun.engine import Batch, Context, Model, SamplerChain
from llamarun.errors import ClosedHandleError
from llamarun.types import ContextOptions, SamplingParams


def test_double_close_and_context_manager(tiny_model_path):
    with Model(tiny_model_path) as model:
        with Context(model, ContextOptions(n_ctx=256)) as ctx:
            ctx.close()
            ctx.close()
        assert ctx.closed
    model.close()
    assert model.closed


def test_model_closed_before_context_keeps_context_usable(tiny_model_path):
    model = Model(tiny_model_path)
    ctx = Context(model, ContextOptions(n_ctx=256))
    model.close()  # the context still holds the native model
    with pytest.raises(ClosedHandleError):
        model.tokenize("hello")
    batch = Batch(8)
    batch.add(5, 0, 0, True)
    ctx.decode(batch)  # must not crash
    assert ctx.seq_pos_max(0) == 0
    ctx.close()
    batch.close()


def test_use_after_close_raises_typed_error(tiny_model_path):
    model = Model(tiny_model_path)
    ctx = Context(model, ContextOptions(n_ctx=256))
    sampler = SamplerChain(model, SamplingParams(temperature=0))
    batch = Batch(4)
    for handle in (sampler, batch, ctx, model):
        handle.close()
    with pytest.raises(ClosedHandleError):
        ctx.decode(Batch(1))
    with pytest.raises(ClosedHandleError):
        sampler.sample(ctx, 0)
    with pytest.raises(ClosedHandleError):
        batch.add(1, 0, 0, True)
    with pytest.raises(ClosedHandleError):
        model.vocab.tokenize("x")
    with pytest.raises(ClosedHandleError):
        Context(model)


def test_forgotten_handles_are_freed_by_finalizers(tiny_model_path):
    model = Model(tiny_model_path)
    Context(model, ContextOptions(n_ctx=256))  # dropped at once: its finalizer frees it
    del model
    gc.collect()


def test_many_load_close_cycles_do_not_grow(tiny_model_path):
    proc = psutil.Process()

    def cycle(n: int) -> None:
        for _ in range(n):
            with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=256)) as ctx:
                batch = Batch(4)
                batch.add(5, 0, 0, True)
                ctx.decode(batch)
                batch.close()

    cycle(5)  # warm up allocators
    gc.collect()
    fds, rss = proc.num_fds(), proc.memory_info().rss
    cycle(40)
    gc.collect()
    assert proc.num_fds() <= fds
    assert proc.memory_info().rss - rss < 64 << 20
