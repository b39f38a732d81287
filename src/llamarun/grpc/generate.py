"""Generate, Complete and Abort: one turn on the serving layer per call, in flight by request id.

The call's deadline becomes the request's timeout; a cancelled call, a dropped
stream or an Abort cancels the turn (its slot is free within one engine step).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from ..errors import InvalidParameterError
from ..runtime import Lease
from ..serving import (
    Service,
    Turn,
    TurnPlan,
    load_options,
    options_request,
    start_turn,
    with_modelfile_options,
)
from .replies import Replies
from .requests import (
    chat_messages,
    chat_tools,
    constraint_of,
    keep_alive_of,
    logit_bias_of,
    options_of,
    require_model,
)
from .v1 import llamarun_pb2 as pb

__all__ = ["Generations"]


@dataclass
class _Call:
    """One Generate/Complete in flight: its turn once submitted, and whether it was aborted."""

    request_id: str
    left: asyncio.Event = field(default_factory=asyncio.Event)
    turn: Turn | None = None

    async def gone(self) -> None:
        await self.left.wait()

    def abort(self) -> None:
        self.left.set()
        if self.turn is not None:
            for request in self.turn.requests:
                request.cancel()


def _input_of(req: pb.GenerateRequest) -> str:
    which = req.WhichOneof("input")
    empty = (which is None or (which == "text" and not req.text)
             or (which == "token_ids" and not req.token_ids.ids)
             or (which == "chat" and not req.chat.messages))
    if empty:
        raise InvalidParameterError("the request has no input: set text, token_ids or chat messages", field="input")
    return str(which)


class Generations:
    """Turns of the gRPC calls of one server, by request id (for :meth:`abort`)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.calls: dict[str, _Call] = {}

    def abort(self, request_id: str) -> bool:
        call = self.calls.get(request_id)
        if call is None:
            return False
        call.abort()
        return True

    def abort_all(self) -> None:
        for call in list(self.calls.values()):
            call.abort()

    @contextlib.asynccontextmanager
    async def _call(self, req: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[_Call]:
        request_id = req.request_id or uuid.uuid4().hex
        if request_id in self.calls:
            raise InvalidParameterError(f"request_id {request_id!r} is already in flight", field="request_id")
        call = _Call(request_id)
        self.calls[request_id] = call
        context.add_done_callback(lambda _ctx: call.left.set())
        try:
            yield call
        finally:
            del self.calls[request_id]

    async def _start(self, req: pb.GenerateRequest, context: grpc.aio.ServicerContext, call: _Call,
                     stream: bool) -> Turn:
        model = require_model(req.model)
        which = _input_of(req)
        options, bias, constraint = options_of(req), logit_bias_of(req.sampling), constraint_of(req)
        service = self.service
        defaults = await service.model_defaults(model)
        options = with_modelfile_options(options, defaults.parameters)
        timeout = service.timeout(context.time_remaining())
        top = max(1, req.top_logprobs) if req.logprobs or req.top_logprobs else 0

        async def build(lease: Lease) -> TurnPlan:
            plan, add_special = None, which != "chat"
            if which == "chat":
                plan = await service.prepare_chat(
                    lease, chat_messages(req.chat), defaults=defaults, tools=chat_tools(req.chat),
                    tool_choice="auto" if req.chat.tools else None, response_format=constraint.format,
                    grammar=constraint.grammar, think=req.chat.think if req.chat.HasField("think") else None)
                prompt, grammar = plan.prompt_input, plan.grammar
            else:
                prompt = req.text if which == "text" else _token_ids(req.token_ids.ids, lease)
                grammar = await _raw_grammar(service, constraint)
            spec = options_request(prompt, options, grammar=grammar, timeout=timeout, logprobs=top,
                                   truncate=req.truncate, add_special=add_special, parse_special=True,
                                   stream_interval=service.stream_interval(stream), metadata=lease.info.metadata)
            if bias:
                spec = dataclasses.replace(spec, sampling=dataclasses.replace(spec.sampling, logit_bias=bias))
            return TurnPlan([spec], plan)

        turn = await start_turn(service, model, build=build, load=load_options(options),
                                keep_alive=keep_alive_of(req), gone=call.gone)
        call.turn = turn
        if call.left.is_set():  # aborted while it was being submitted
            call.abort()
        return turn

    async def stream(self, req: pb.GenerateRequest, context: grpc.aio.ServicerContext,
                     ) -> AsyncIterator[pb.GenerateResponse]:
        """Chunks as they come, then one Complete."""
        async with self._call(req, context) as call:
            turn = await self._start(req, context, call, stream=True)
            replies = Replies(self.service, turn, logprobs=req.logprobs or req.top_logprobs > 0)
            async with turn:
                firsts = await turn.first_events()
                async for _, event in turn.events(firsts):
                    if replies.worth_sending(event):
                        yield await replies.response(call.request_id, event)

    async def complete(self, req: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        async with self._call(req, context) as call:
            turn = await self._start(req, context, call, stream=False)
            replies = Replies(self.service, turn, logprobs=req.logprobs or req.top_logprobs > 0)
            async with turn:
                collected = (await turn.collect())[0]
            return await replies.whole(call.request_id, collected)


def _token_ids(ids: Any, lease: Lease) -> list[int]:
    n_vocab = lease.info.n_vocab
    tokens = list(ids)
    bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
    if bad is not None:
        raise InvalidParameterError(f"token_ids: {bad} is outside the vocabulary (0..{n_vocab - 1})",
                                    field="token_ids")
    return tokens


async def _raw_grammar(service: Service, constraint: Any) -> str | None:
    if constraint.grammar is not None:
        from ..grammar import check_gbnf

        await service.blocking(check_gbnf, constraint.grammar)
        return str(constraint.grammar)
    return await service.response_grammar(constraint.format)
