"""Events reach asyncio consumers in order, in one wake-up per engine step, and never after their loop closed."""

from __future__ import annotations

import asyncio
import select

import pytest

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
    """Stands in for an asyncio loop: counts wake-ups (calls, or a watched descriptor turning readable)."""

    def __init__(self, *, watches: bool = True) -> None:
        self.calls: list[tuple] = []
        self.readers: dict[int, object] = {}
        self.closed = False
        self.watches = watches

    def is_closed(self) -> bool:
        return self.closed

    def call_soon_threadsafe(self, fn, *args) -> None:
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.calls.append((fn, args))

    def add_reader(self, fd: int, callback) -> None:
        if not self.watches:
            raise NotImplementedError
        self.readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        del self.readers[fd]

    def run_once(self) -> int:
        """Run what is due, as one loop iteration would; returns the number of wake-ups."""
        calls, self.calls = self.calls, []
        ready = [cb for fd, cb in self.readers.items() if select.select([fd], [], [], 0)[0]]
        for callback in ready:
            callback()  # type: ignore[operator]
        for fn, args in calls:
            fn(*args)
        return len(calls) + len(ready)


class _Request:
    def __init__(self) -> None:
        self.received: list[object] = []
        self.cancelled = False

    def receive(self, event: object) -> None:
        self.received.append(event)

    def cancel(self) -> None:
        self.cancelled = True


@pytest.mark.parametrize("watches", [True, False], ids=["eventfd", "call_soon_threadsafe"])
def test_one_wake_up_per_flush_and_order_kept(watches):
    loop, a, b = _Loop(watches=watches), _Request(), _Request()
    handoff = Handoff()
    outbox = handoff.flusher(loop, lambda: LoopOutbox(loop))  # type: ignore[arg-type]
    assert handoff.flusher(loop, lambda: LoopOutbox(loop)) is outbox  # type: ignore[arg-type]
    for event in ("a1", "a2"):
        outbox.put(a, event)  # type: ignore[arg-type]
    outbox.put(b, "b1")  # type: ignore[arg-type]
    handoff.flush()
    handoff.flush()  # nothing pending: no wake-up
    assert loop.run_once() == 1
    assert a.received == ["a1", "a2"] and b.received == ["b1"]
    outbox.put(a, "a3")  # type: ignore[arg-type]
    handoff.flush()
    outbox.put(a, "a4")  # type: ignore[arg-type]
    handoff.flush()  # the loop has not run yet: the descriptor stays readable, one wake-up takes both
    assert loop.run_once() == (1 if watches else 2) and loop.run_once() == 0
    assert a.received == ["a1", "a2", "a3", "a4"]
    assert bool(loop.readers) is watches
    handoff.close()  # the runtime stopped: the descriptor is let go on the loop's thread
    loop.run_once()
    assert not loop.readers


def test_events_for_a_closed_loop_cancel_their_requests_and_the_outbox_goes():
    loop, a = _Loop(), _Request()
    handoff = Handoff()
    outbox = handoff.flusher(loop, lambda: LoopOutbox(loop))  # type: ignore[arg-type]
    outbox.put(a, "a1")  # type: ignore[arg-type]
    loop.closed = True
    handoff.flush()
    assert a.cancelled and not loop.calls
    assert handoff.flusher(loop, lambda: LoopOutbox(loop)) is not outbox  # type: ignore[arg-type]


def test_a_stopped_runtime_registers_no_more_wake_ups():
    loop = _Loop()
    handoff = Handoff()
    handoff.close()
    handoff.flusher(loop, lambda: LoopOutbox(loop))  # type: ignore[arg-type]
    loop.run_once()
    assert not loop.readers
