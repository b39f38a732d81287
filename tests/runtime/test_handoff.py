"""Events reach asyncio consumers in order, in one wake-up per engine step, and never after their loop closed."""

from __future__ import annotations

import asyncio

from llamarun.runtime import AsyncClient, GenerationRequest, Runtime, RuntimeConfig
from llamarun.runtime.client import LoopOutbox
from llamarun.runtime.handoff import Handoff
from llamarun.types import GenerationResult, SamplingParams

GREEDY = SamplingParams(temperature=0)


def test_concurrent_async_streams_get_every_token_in_order(tiny_model_path):
    config = RuntimeConfig(n_ctx=256, n_slots=4, n_threads=2)
    with Runtime(tiny_model_path, config) as rt:
        async def one(i: int) -> tuple[list[int], GenerationResult]:
            request = AsyncClient(rt).submit(GenerationRequest(prompt=f"stream {i}", max_tokens=24, sampling=GREEDY,
                                                               ignore_eos=True))
            ids = [t async for chunk in request.chunks() for t in chunk.token_ids]
            assert request.result is not None
            return ids, request.result

        async def main() -> list[tuple[list[int], GenerationResult]]:
            return await asyncio.gather(*(one(i) for i in range(6)))  # more than the slots: some wait

        for ids, result in asyncio.run(main()):
            assert ids == list(result.token_ids) and len(ids) == 24


class _Loop:
    """Stands in for an asyncio loop: counts wake-ups."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    def call_soon_threadsafe(self, fn, *args) -> None:
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.calls.append((fn, args))


class _Request:
    def __init__(self) -> None:
        self.received: list[object] = []
        self.cancelled = False

    def receive(self, event: object) -> None:
        self.received.append(event)

    def cancel(self) -> None:
        self.cancelled = True


def test_one_wake_up_per_flush_and_order_kept():
    loop, a, b = _Loop(), _Request(), _Request()
    handoff = Handoff()
    outbox = handoff.flusher(loop, lambda: LoopOutbox(loop))  # type: ignore[arg-type]
    assert handoff.flusher(loop, lambda: LoopOutbox(loop)) is outbox  # type: ignore[arg-type]
    for event in ("a1", "a2"):
        outbox.put(a, event)  # type: ignore[arg-type]
    outbox.put(b, "b1")  # type: ignore[arg-type]
    handoff.flush()
    handoff.flush()  # nothing pending: no wake-up
    assert len(loop.calls) == 1
    fn, args = loop.calls[0]
    fn(*args)
    assert a.received == ["a1", "a2"] and b.received == ["b1"]


def test_events_for_a_closed_loop_cancel_their_requests_and_the_outbox_goes():
    loop, a = _Loop(), _Request()
    handoff = Handoff()
    outbox = handoff.flusher(loop, lambda: LoopOutbox(loop))  # type: ignore[arg-type]
    outbox.put(a, "a1")  # type: ignore[arg-type]
    loop.closed = True
    handoff.flush()
    assert a.cancelled and not loop.calls
    assert handoff.flusher(loop, lambda: LoopOutbox(loop)) is not outbox  # type: ignore[arg-type]
