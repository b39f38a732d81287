"""Clients over a :class:`Runtime`: synchronous (library, CLI) and asyncio (servers)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from .wakeup import wakeup_fd
from ..types import Chunk, GenerationResult, TokenLogprob
from .request import GenerationRequest
from .runtime import Runtime
from .sequence import Event

__all__ = ["AsyncClient", "AsyncRequest", "LoopOutbox", "RequestStream", "SyncClient"]


def _check(event: Event) -> Event:
    if isinstance(event, BaseException):
        raise event
    return event


def _with_logprobs(result: GenerationResult, logprobs: list[TokenLogprob]) -> GenerationResult:
    """The result carrying the log-probabilities its chunks carried (the final result has them too)."""
    return replace(result, logprobs=tuple(logprobs)) if logprobs and not result.logprobs else result


class RequestStream:
    """A submitted request, consumed from one thread: iterate for chunks, then read ``result``.

    Leaving a ``with`` block or calling :meth:`cancel` before the end cancels it.
    """

    def __init__(self, runtime: Runtime, spec: GenerationRequest) -> None:
        self._runtime = runtime
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.result: GenerationResult | None = None
        self.id = runtime.submit(spec, self._events.put)

    def __iter__(self) -> Iterator[Chunk]:
        logprobs: list[TokenLogprob] = []
        while self.result is None:
            event = _check(self._events.get())
            if isinstance(event, GenerationResult):
                self.result = _with_logprobs(event, logprobs)
            else:
                logprobs.extend(event.logprobs)
                yield event

    def wait(self) -> GenerationResult:
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        if self.result is None:
            self._runtime.cancel(self.id)

    def __enter__(self) -> "RequestStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class SyncClient:
    """Blocking access to a runtime (the library API and the CLI use it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def stream(self, spec: GenerationRequest) -> RequestStream:
        return RequestStream(self.runtime, spec)

    def generate(self, spec: GenerationRequest) -> GenerationResult:
        """Wait for the whole result; the caller's thread sleeps until the end (no wake-up per token)."""
        done = threading.Event()
        box: list[Event] = []
        logprobs: list[TokenLogprob] = []

        def sink(event: Event) -> None:
            if isinstance(event, (GenerationResult, BaseException)):
                box.append(event)
                done.set()
            elif event.logprobs:
                logprobs.extend(event.logprobs)

        request_id = self.runtime.submit(spec, sink)
        try:
            done.wait()
        finally:
            if not box:
                self.runtime.cancel(request_id)
        return _with_logprobs(_check(box[0]), logprobs)  # type: ignore[arg-type]


class LoopOutbox:
    """Events from one engine thread to one asyncio loop, handed over in one wake-up per step.

    The engine thread appends events as it samples; they are handed over as
    it starts its next decode (see :mod:`.handoff`), not one per token in the
    middle of sampling.  The wake-up is an eventfd the loop reads, set without
    letting go of the GIL (:mod:`llamarun.runtime.wakeup`); where there is none,
    or the loop cannot watch a descriptor, ``call_soon_threadsafe``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[AsyncRequest, Event]] = []
        self._ready: list[tuple[AsyncRequest, Event]] = []  # handed over, not yet taken by the loop
        self._wakeup = wakeup_fd()
        if self._wakeup is not None:
            try:
                loop.add_reader(self._wakeup.fd, self._take)
            except NotImplementedError:  # e.g. the proactor loop on Windows
                self._wakeup.close()
                self._wakeup = None

    def put(self, request: "AsyncRequest", event: Event) -> None:
        with self._lock:
            self._pending.append((request, event))

    def flush(self) -> bool:  # engine thread
        with self._lock:
            items, self._pending = self._pending, []
            wake = bool(items) and not self._ready
            if self._wakeup is not None:
                self._ready += items
        if self._loop.is_closed():
            self._drop(items)
            if self._wakeup is not None:
                self._wakeup.close()  # a closed loop watches nothing
            return False
        if self._wakeup is not None:
            if wake:
                self._wakeup.set()
        elif items:
            try:
                self._loop.call_soon_threadsafe(_hand_over, items)
            except RuntimeError:  # the loop closed meanwhile: nobody is listening any more
                self._drop(items)
                return False
        return True

    def close(self) -> None:  # engine thread, when its runtime stops (after the last flush)
        if self._wakeup is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._detach)
        except RuntimeError:  # the loop is closed: it watches nothing any more
            self._wakeup.close()

    def _take(self) -> None:  # loop thread: the eventfd is readable
        assert self._wakeup is not None
        self._wakeup.clear()
        with self._lock:
            items, self._ready = self._ready, []
        _hand_over(items)

    def _detach(self) -> None:  # loop thread
        if self._wakeup is not None:
            self._take()  # anything still waiting
            self._loop.remove_reader(self._wakeup.fd)
            self._wakeup.close()
            self._wakeup = None

    @staticmethod
    def _drop(items: list[tuple["AsyncRequest", Event]]) -> None:
        for request, _ in items:
            request.cancel()


def _hand_over(items: list[tuple["AsyncRequest", Event]]) -> None:
    for request, event in items:
        request.receive(event)


class AsyncRequest:
    """A submitted request consumed from an asyncio loop.

    ``await next_event()`` gives the next :class:`Chunk`, then the final
    :class:`GenerationResult`; errors are raised.  Closing it early (or the
    task being cancelled, e.g. a client disconnect) cancels the request.
    """

    def __init__(self, runtime: Runtime, spec: GenerationRequest) -> None:
        self._runtime = runtime
        loop = asyncio.get_running_loop()
        self._outbox = runtime.flusher(loop, lambda: LoopOutbox(loop))
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._logprobs: list[TokenLogprob] = []
        self.result: GenerationResult | None = None
        self.id = runtime.submit(spec, self._deliver)

    def _deliver(self, event: Event) -> None:  # engine thread
        self._outbox.put(self, event)

    def receive(self, event: Event) -> None:
        """Called on the request's loop with the next event (by :class:`LoopOutbox`)."""
        self._events.put_nowait(event)

    async def next_event(self) -> Chunk | GenerationResult:
        event = _check(await self._events.get())
        if isinstance(event, GenerationResult):
            self.result = event = _with_logprobs(event, self._logprobs)
        elif isinstance(event, Chunk) and event.logprobs:
            self._logprobs.extend(event.logprobs)
        return event  # type: ignore[return-value]

    async def chunks(self) -> AsyncIterator[Chunk]:
        try:
            while self.result is None:
                event = await self.next_event()
                if isinstance(event, Chunk):
                    yield event
        finally:
            self.cancel()

    def cancel(self) -> None:
        if self.result is None:
            self._runtime.cancel(self.id)


class AsyncClient:
    """asyncio access to a runtime (``async for chunk in client.stream(spec)``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def submit(self, spec: GenerationRequest) -> AsyncRequest:
        return AsyncRequest(self.runtime, spec)

    async def stream(self, spec: GenerationRequest) -> AsyncIterator[Chunk]:
        request = self.submit(spec)
        async for chunk in request.chunks():
            yield chunk

    async def generate(self, spec: GenerationRequest) -> GenerationResult:
        request = self.submit(spec)
        try:
            while request.result is None:
                await request.next_event()
            return request.result
        finally:
            request.cancel()

    async def call(self, fn: Any) -> Any:
        """Run ``fn(model)`` on the engine thread without blocking the event loop."""
        return await asyncio.to_thread(self.runtime.call, fn)
