"""Ollama's NDJSON answers: one line (streamed or as JSON), a store operation's progress, timestamps."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ...serving import Service
from ..streaming import WatchedStreamingResponse, ndjson

__all__ = ["NDJSON", "nanoseconds", "now_rfc3339", "respond", "rfc3339", "store_progress"]

NDJSON = "application/x-ndjson"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def nanoseconds(seconds: float) -> int:
    """Ollama's durations: whole nanoseconds, never negative."""
    return int(max(0.0, seconds) * 1e9)


def respond(line: dict[str, Any], stream: bool) -> Response:
    """A single-line answer: one NDJSON line when the client asked to stream, else plain JSON."""
    if stream:
        return Response(ndjson(line), media_type=NDJSON)
    return JSONResponse(line)


async def store_progress(service: Service, request: Request, stream: bool,
                         work: Callable[[Callable[[Any], None]], Any]) -> Response:
    """Run a store operation in the pool; stream its progress events as NDJSON, or answer at the end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(event: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event.to_json())

    future = loop.run_in_executor(service.executor, work, emit)
    if not stream:
        await future
        return JSONResponse({"status": "success"})
    # errors found before any transfer (bad name, unknown model) keep their status code
    first = await asyncio.wait({future}, timeout=0.05)
    if future in first[0] and future.exception() is not None:
        raise future.exception()  # type: ignore[misc]
    return WatchedStreamingResponse(_progress_lines(queue, future), media_type=NDJSON)


async def _progress_lines(queue: asyncio.Queue[Any], future: asyncio.Future[Any]) -> AsyncIterator[bytes]:
    """Each progress event as it comes; then a final error line if the operation failed."""
    done = asyncio.ensure_future(asyncio.shield(future))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            finished, _ = await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
            if getter in finished:
                yield ndjson(getter.result())
                continue
            getter.cancel()
            while not queue.empty():
                yield ndjson(queue.get_nowait())
            error = done.exception()
            if error is not None:
                yield ndjson({"error": str(error)})
            return
    finally:
        done.cancel()
