"""Run one forwarded HTTP request through an ASGI app in this process, yielding what it sends.

A replica answers the ingress's forwarded requests with the same HTTP app
``llamarun serve`` runs (every API, streaming included), without a socket:
the request's body is handed over at once, each response message comes back
as it is sent (body chunks that are ready together go as one), and the
caller going away (the ingress cancels the call) is a disconnect the app sees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ForwardedCall", "ResponseStart", "call_app"]

_DRAIN_S = 5.0  # how long the app gets to finish after a disconnect before it is cancelled
_QUEUED_MESSAGES = 64  # response messages held for the ingress before the app waits


@dataclass(frozen=True)
class ForwardedCall:
    """One HTTP request as the ingress forwards it (``prefix``: its text, for prefix routing)."""

    method: str
    path: str
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    prefix: str = field(default="", repr=False)

    @property
    def prompt(self) -> str:
        """The request's text, as routers that match prompts read it."""
        return self.prefix


@dataclass(frozen=True)
class ResponseStart:
    """The first thing a forwarded call yields: the status and headers."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]


def _scope(call: ForwardedCall) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": call.method, "scheme": "http", "path": call.path, "raw_path": call.path.encode(),
            "query_string": call.query, "root_path": "", "headers": list(call.headers),
            "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80), "state": {}}


async def call_app(app: Any, call: ForwardedCall) -> AsyncIterator[ResponseStart | bytes]:
    """The app's answer to ``call``: a :class:`ResponseStart`, then the body in chunks."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUED_MESSAGES)  # a slow reader slows the app
    gone = asyncio.Event()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": call.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await messages.put(message)

    task = asyncio.ensure_future(app(_scope(call), receive, send))
    try:
        async for item in _responses(messages, task):
            yield item
    finally:
        gone.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), _DRAIN_S)
        task.cancel()


async def _responses(messages: asyncio.Queue[dict[str, Any]],
                     task: asyncio.Future[Any]) -> AsyncIterator[ResponseStart | bytes]:
    while True:
        getter = asyncio.ensure_future(messages.get())
        try:
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter not in done:
            if messages.empty():
                task.result()  # the app failed before answering: its error goes to the caller
                return
            continue
        message = getter.result()
        if message["type"] == "http.response.start":
            yield ResponseStart(int(message["status"]), tuple(tuple(h) for h in message.get("headers", ())))
            continue
        body, more = message.get("body", b""), message.get("more_body", False)
        while more and not messages.empty():  # chunks ready together travel together
            following = messages.get_nowait()
            body += following.get("body", b"")
            more = following.get("more_body", False)
        if body:
            yield body
        if not more:
            return
