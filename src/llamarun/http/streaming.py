"""Responses that notice a client leaving: the request is cancelled, not left running.

Starlette's own StreamingResponse only notices a disconnect when a write
fails, which never happens while a long prompt is being prefilled.  Here a
listener on ``receive`` runs next to the work, for streaming and non-streaming
responses alike, and cancels it the moment the client is gone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..serving import Gone, until_gone

__all__ = ["SseTemplate", "WatchedStreamingResponse", "disconnected", "line_json", "ndjson", "sse", "until_disconnect"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def disconnected(receive: Receive) -> Gone:
    """The serving layer's :data:`~llamarun.serving.Gone` for an HTTP request: returns on disconnect."""
    return functools.partial(_wait_disconnect, receive)


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise :class:`ClientDisconnected`."""
    return await until_gone(disconnected(receive), work)


class WatchedStreamingResponse(StreamingResponse):
    """Streams ``content`` while listening for a disconnect (which cancels the stream);
    ``on_close`` callbacks run however the response ends, even if it never started."""

    def __init__(self, content: AsyncIterator[bytes], *, media_type: str, status_code: int = 200,
                 headers: dict[str, str] | None = None, on_close: Iterable[Callable[[], Any]] = ()) -> None:
        super().__init__(content, status_code=status_code, headers=headers, media_type=media_type)
        self._on_close = list(on_close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-write
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await _wait_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            for callback in self._on_close:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - cleanup must run to the end
                    logger.exception("cleanup after a stream failed")


# Characters JSON leaves as they are but Python's str.splitlines() breaks lines at (the rest of its
# line breaks are control characters, which JSON escapes).  httpx's iter_lines()/aiter_lines() split
# there, and so do the clients built on them (the official `ollama` client reads NDJSON that way):
# a model that writes U+2028 would cut a streamed line in two.
_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def line_json(obj: Any) -> str:
    """Compact JSON (UTF-8 kept) that stays on one line for any line splitter."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        for char in _LINE_BREAKS:
            if char in text:
                text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def ndjson(obj: Any) -> bytes:
    return line_json(obj).encode() + b"\n"


def sse(obj: Any) -> bytes:
    if isinstance(obj, str):
        return f"data: {obj}\n\n".encode()
    return b"data: " + line_json(obj).encode() + b"\n\n"


_HOLE = "\x00llamarun-hole\x00"


class SseTemplate:
    """An SSE event whose JSON is encoded once, with a hole for one string (a streamed token's text).

    ``render(text)`` gives the bytes :func:`sse` gives for the same object with
    ``text`` in the hole, for the price of encoding one string: a chunk's JSON
    was a fifth of the event loop's work per streamed token.
    """

    def __init__(self, obj: Any) -> None:
        head, tail = sse(obj).split(line_json(_HOLE).encode())  # exactly one hole, or this raises
        self._head, self._tail = head, tail

    @staticmethod
    def hole() -> str:
        """The placeholder to put where the string goes."""
        return _HOLE

    def render(self, text: str) -> bytes:
        return self._head + line_json(text).encode() + self._tail
