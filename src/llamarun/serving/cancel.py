"""A caller that goes away: every frontend says how it notices, the serving layer stops the work.

A frontend passes a :data:`Gone` (an async function that returns once its caller
has left: an HTTP disconnect, a gRPC context done, a closed socket); the
serving layer races each wait against it and cancels what the caller no
longer wants.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["CallerGone", "Gone", "until_gone"]

T = TypeVar("T")

Gone = Callable[[], Awaitable[None]]
"""Returns when the caller has gone away (it never needs to return otherwise)."""


class CallerGone(Exception):
    """The caller went away before the answer was ready (nobody reads what follows)."""


async def until_gone(gone: Gone | None, work: Awaitable[T]) -> T:
    """Await ``work``; if the caller leaves first, cancel it and raise :class:`CallerGone`."""
    if gone is None:
        return await work
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise CallerGone()
