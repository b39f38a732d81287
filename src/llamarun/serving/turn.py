"""One turn of generation, the same for every frontend: acquire, build, submit, stream or collect,
cancel when the caller goes away, release on every path.

    turn = await start_turn(service, "smollm2", build=build, gone=gone)
    async with turn:                       # cancels and releases however it ends
        firsts = await turn.first_events() # errors before any output raise here
        async for index, event in turn.events(firsts):
            ...                            # Chunk, then one GenerationResult per choice

``build(lease)`` makes the :class:`TurnPlan` on the lease: one
:class:`GenerationRequest` per choice (``n``), and the chat plan that reads the
output (thinking, tool calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidParameterError, UnsupportedFeatureError
from ..runtime import AsyncRequest, GenerationRequest, Lease, LoadOptions, is_embedding_model
from ..types import Chunk, GenerationResult, TokenLogprob
from .cancel import Gone, until_gone
from .outcome import check_finished
from .service import Service

__all__ = ["Collected", "Event", "Turn", "TurnPlan", "start_turn"]

Event = Chunk | GenerationResult


@dataclass(frozen=True)
class TurnPlan:
    """What a frontend built on its lease: the requests (one per choice) and how to read them."""

    requests: Sequence[GenerationRequest]
    chat: Any = None  # the chat plan (parses thinking and tool calls); None for raw prompts
    context: list[int] | None = None  # Ollama's /api/generate context: returned extended by the answer


@dataclass
class Collected:
    """A finished generation with the per-token log-probabilities its chunks carried."""

    result: GenerationResult
    logprobs: list[TokenLogprob] = field(default_factory=list)


async def start_turn(service: Service, model: str, *, build: Callable[[Lease], Awaitable[TurnPlan]],
                     load: LoadOptions | None = None, keep_alive: float | None = None,
                     gone: Gone | None = None) -> Turn:
    """Acquire ``model``, let ``build`` plan the turn on the lease and submit it; the lease is
    released on every failure before the turn owns it."""
    lease = await service.acquire(model, load, keep_alive, gone=gone)
    try:
        lease.runtime.check_room()  # a full queue answers before the prompt is built
        plan = await build(lease)
        requests = _submit_all(lease, plan.requests)
    except BaseException:
        lease.release()
        raise
    return Turn(lease, requests, plan, gone)


def _submit_all(lease: Lease, specs: Sequence[GenerationRequest]) -> list[AsyncRequest]:
    """Queue every choice (:class:`OverloadedError` at once when the queue is full)."""
    if is_embedding_model(lease.info):
        raise UnsupportedFeatureError(f'"{lease.name}" is an embedding model: it cannot generate text',
                                      field="model")
    n_vocab = lease.info.n_vocab
    for token in specs[0].sampling.logit_bias if specs else ():
        if token >= n_vocab:
            raise InvalidParameterError(f"logit_bias: token id {token} is outside the vocabulary "
                                        f"(0..{n_vocab - 1})", field="logit_bias")
    submitted: list[AsyncRequest] = []
    try:
        for spec in specs:
            submitted.append(AsyncRequest(lease.runtime, spec))
    except BaseException:
        for r in submitted:
            r.cancel()
        raise
    return submitted


async def _collect_one(request: AsyncRequest) -> Collected:
    logprobs: list[TokenLogprob] = []
    try:
        while request.result is None:
            event = await request.next_event()
            if isinstance(event, Chunk) and event.logprobs:
                logprobs.extend(event.logprobs)
        return Collected(request.result, logprobs)
    finally:
        request.cancel()


class Turn:
    """The choices of one request in flight, on one lease."""

    def __init__(self, lease: Lease, requests: list[AsyncRequest], plan: TurnPlan, gone: Gone | None) -> None:
        self.lease, self.requests, self.plan, self.gone = lease, requests, plan, gone

    async def __aenter__(self) -> Turn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what still runs and return the lease (safe to call more than once)."""
        for r in self.requests:
            r.cancel()
        self.lease.release()

    async def first_events(self, *, check: bool = True) -> list[Event]:
        """Each choice's first event, so that errors before any output are raised (and become a
        status); ``check``: a first event that is a failed result raises too."""
        try:
            events = [await until_gone(self.gone, r.next_event()) for r in self.requests]
            if check:
                for event in events:
                    if isinstance(event, GenerationResult):
                        check_finished(event)
            return events
        except BaseException:
            self.close()
            raise

    async def collect(self) -> list[Collected]:
        """Wait for whole generations (the caller leaving cancels them all); raises for a choice
        that was cancelled or failed."""
        async def gather() -> list[Collected]:
            tasks = [asyncio.ensure_future(_collect_one(r)) for r in self.requests]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for task in tasks:
                    task.cancel()

        try:
            collected = await until_gone(self.gone, gather())
        finally:
            for r in self.requests:
                r.cancel()
        for c in collected:
            check_finished(c.result)
        return collected

    async def events(self, firsts: Sequence[Event]) -> AsyncIterator[tuple[int, Event]]:
        """Events of every choice as they come, tagged with the choice index (after ``firsts``); a
        choice that was cancelled or failed raises instead of yielding its result."""
        if len(self.requests) == 1:  # the common case: no tasks, no queue
            event = firsts[0]
            while True:
                if isinstance(event, GenerationResult):
                    check_finished(event)
                    yield 0, event
                    return
                yield 0, event
                event = await self.requests[0].next_event()
        async for index, event in _merged(self.requests, firsts):
            if isinstance(event, GenerationResult):
                check_finished(event)
            yield index, event


async def _merged(requests: Sequence[AsyncRequest], firsts: Sequence[Event]) -> AsyncIterator[tuple[int, Event]]:
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

    async def pump(index: int, request: AsyncRequest, first: Event) -> None:
        event: Any = first
        try:
            while True:
                await queue.put((index, event))
                if isinstance(event, GenerationResult):
                    return
                event = await request.next_event()
        except Exception as exc:  # noqa: BLE001 - any failure ends the whole answer, never a silent hang
            await queue.put((index, exc))

    tasks = [asyncio.ensure_future(pump(i, r, f)) for i, (r, f) in enumerate(zip(requests, firsts, strict=True))]
    try:
        pending = len(tasks)
        while pending:
            index, event = await queue.get()
            if isinstance(event, Exception):
                raise event
            if isinstance(event, GenerationResult):
                pending -= 1
            yield index, event
    finally:
        for task in tasks:
            task.cancel()
