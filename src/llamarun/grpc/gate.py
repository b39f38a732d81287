"""What every call passes first: the token (when the server has a key) and the drain.

The health service answers without a token (probes carry none) and while
draining (it says NOT_SERVING); every other call needs ``authorization: Bearer
<key>``; llamarun.v1 calls are refused with UNAVAILABLE once the server drains
and are counted while in flight, so a drain can wait for them. Their request bytes are parsed
here: bytes that are not a valid message (a string field that is not UTF-8) are refused with
INVALID_ARGUMENT naming the problem, where grpc would answer UNKNOWN.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

__all__ = ["Gate"]

_HEALTH = "/grpc.health.v1.Health/"
_SERVICE = "/llamarun.v1.Llamarun/"


class Gate(grpc.aio.ServerInterceptor):
    """Token check, drain refusal and the in-flight count of one server."""

    def __init__(self, api_key: str | None) -> None:
        self._key = api_key.encode() if api_key else None
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _authorized(self, metadata: Any) -> bool:
        if self._key is None:
            return True
        auth = next((v for k, v in metadata or () if k == "authorization"), "")
        scheme, _, token = (auth.decode("latin-1") if isinstance(auth, bytes) else auth).partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_HEALTH):
            return handler
        if not self._authorized(details.invocation_metadata):
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "missing or wrong API key: send metadata 'authorization: Bearer <key>'")
        if not method.startswith(_SERVICE):
            return handler
        if self.draining:
            return _refusal(handler, grpc.StatusCode.UNAVAILABLE,
                            "the server is shutting down; retry on another instance")
        return self._counted(handler)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no llamarun.v1 call is in flight (False: ``timeout`` seconds passed first)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def _counted(self, handler: Any) -> Any:
        parse = handler.request_deserializer
        if handler.response_streaming:
            behavior = handler.unary_stream

            async def stream(raw: bytes, context: Any) -> AsyncIterator[Any]:
                request = await _parsed(parse, raw, context)
                self._enter()
                try:
                    async for response in behavior(request, context):
                        yield response
                finally:
                    self._leave()

            return grpc.unary_stream_rpc_method_handler(stream, None, handler.response_serializer)
        unary = handler.unary_unary

        async def call(raw: bytes, context: Any) -> Any:
            request = await _parsed(parse, raw, context)
            self._enter()
            try:
                return await unary(request, context)
            finally:
                self._leave()

        return grpc.unary_unary_rpc_method_handler(call, None, handler.response_serializer)


async def _parsed(parse: Callable[[bytes], Any] | None, raw: bytes, context: Any) -> Any:
    """The request message of ``raw`` bytes; INVALID_ARGUMENT when they are not one."""
    if parse is None:
        return raw
    try:
        return parse(raw)
    except DecodeError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message: {exc}")


def _refusal(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    async def refuse(_request: Any, context: Any) -> None:
        await context.abort(code, message)

    async def refuse_stream(_request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    kinds = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
             (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    behavior = refuse_stream if handler.response_streaming else refuse
    return make(behavior, handler.request_deserializer, handler.response_serializer)
