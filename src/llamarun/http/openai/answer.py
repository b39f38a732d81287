"""The skeleton chat and text completions share: start the turn, answer it whole or as SSE.

A subclass of :class:`Answer` says what one choice looks like (``choice``) and
what each event streams as (``chunks``); the rest (identity, usage, errors in
the stream, ``[DONE]``, cancel and release on every path) is here once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ...errors import LlamarunError
from ...runtime import Lease
from ...serving import Collected, Event, Service, Turn, TurnPlan, start_turn
from ...types import GenerationResult
from ..context import request_timeout
from ..errors import error_body, status_of
from ..streaming import WatchedStreamingResponse, disconnected, sse
from .fields import keep_alive_of, with_modelfile_sampling
from .schemas import SamplingFields

__all__ = ["FINGERPRINT", "SSE", "Answer", "finish_reason", "open_turn", "usage"]

SSE = "text/event-stream"
FINGERPRINT = "llamarun"

Build = Callable[[Lease, Any, Any, float | None], Awaitable[TurnPlan]]


def finish_reason(result: GenerationResult, tool_calls: bool = False) -> str:
    if tool_calls:
        return "tool_calls"
    # a deadline is "length", as llama-server ends its time limit (t_max_predict_ms): one of the
    # finish reasons the official clients declare
    return "length" if result.finish_reason.value in ("length", "deadline") else "stop"


def usage(results: Sequence[GenerationResult]) -> dict[str, Any]:
    prompt = results[0].prompt_tokens if results else 0
    cached = results[0].cached_tokens if results else 0
    completion = sum(r.completion_tokens for r in results)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}}
    drafted = sum(r.timings.drafted_tokens for r in results)
    if drafted:  # speculative decoding, in the spelling of OpenAI's predicted outputs
        accepted = sum(r.timings.accepted_tokens for r in results)
        out["completion_tokens_details"] = {"accepted_prediction_tokens": accepted,
                                            "rejected_prediction_tokens": drafted - accepted}
    return out


async def open_turn(service: Service, request: Request, body: SamplingFields, *, has_max: bool,
                    build: Build) -> Turn:
    """The request's turn: the Modelfile's sampling where the body gives none, then ``build(lease,
    body, defaults, timeout)`` on the lease."""
    timeout = request_timeout(service, body.timeout, request.headers)
    defaults = await service.model_defaults(body.model)
    body = with_modelfile_sampling(body, defaults.parameters, has_max=has_max)

    async def on_lease(lease: Lease) -> TurnPlan:
        return await build(lease, body, defaults, timeout)

    return await start_turn(service, body.model, build=on_lease, keep_alive=keep_alive_of(body.keep_alive),
                            gone=disconnected(request.receive))


class Answer:
    """The response to one chat or text completion request (``n`` choices)."""

    object_name = ""  # the whole answer's "object"
    chunk_name = ""  # each streamed chunk's "object"
    prefix = ""  # of the id

    def __init__(self, service: Service, turn: Turn, *, model: str, logprobs: bool, include_usage: bool) -> None:
        self.service, self.turn, self.model = service, turn, model
        self.logprobs, self.include_usage = logprobs, include_usage
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.results: list[GenerationResult] = []

    def head(self, **fields: Any) -> dict[str, Any]:
        return {"id": self.id, "object": self.chunk_name, "created": self.created, "model": self.model,
                "system_fingerprint": FINGERPRINT, **fields}

    async def respond(self, stream: bool) -> Response:
        if not stream:
            async with self.turn:
                collected = await self.turn.collect()
                choices = [await self.choice(i, c) for i, c in enumerate(collected)]
            return JSONResponse({**self.head(object=self.object_name), "choices": choices,
                                 "usage": usage([c.result for c in collected])})
        firsts = await self.turn.first_events()
        return WatchedStreamingResponse(self._events(firsts), media_type=SSE, on_close=[self.turn.close])

    async def choice(self, index: int, collected: Collected) -> dict[str, Any]:
        raise NotImplementedError

    def chunks(self, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def usage_chunk(self) -> bytes:
        return sse({**self.head(), "choices": [], "usage": usage(self.results)})

    async def _events(self, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
        try:
            async for data in self.chunks(firsts):
                yield data
            if self.include_usage:
                yield self.usage_chunk()
        except LlamarunError as exc:
            yield sse(error_body("/v1/", status_of(exc), str(exc)))
        yield sse("[DONE]")
