"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` on the serving layer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ...config import parse_keep_alive
from ...errors import InvalidParameterError
from ...runtime import GenerationRequest, Lease
from ...serving import (
    Service,
    SpecSampling,
    TurnPlan,
    spec_request,
    start_turn,
    stops,
)
from ...types import PromptSegments
from ..context import ServiceDep, request_timeout
from ..streaming import WatchedStreamingResponse, disconnected
from .convert import chat_input, response_format, think_of, tool_choice_of, tools_of
from .reply import Reply
from .schemas import CountTokensRequest, MessagesRequest
from .stream import message_events

__all__ = ["count_tokens", "create_message"]

_FROM_MODELFILE = ("temperature", "top_p", "top_k")


async def _plan(service: Service, lease: Lease, body: CountTokensRequest | MessagesRequest, defaults: Any) -> Any:
    """The chat plan of a request (a prefill appended as client text the answer continues)."""
    given = chat_input(body.system, body.messages)
    choice, parallel = tool_choice_of(body.tool_choice)
    think, _ = think_of(body.thinking, getattr(body, "max_tokens", None))
    plan = await service.prepare_chat(lease, given.messages, defaults=defaults, tools=tools_of(body.tools),
                                      tool_choice=choice, parallel_tool_calls=parallel,
                                      response_format=response_format(body.output_config), think=think,
                                      template_name=body.template_name)
    if not given.prefill:
        return plan
    parts = plan.segments.parts if plan.segments is not None else ((plan.prompt, True),)
    return dataclasses.replace(plan, prompt=plan.prompt + given.prefill,
                               segments=PromptSegments((*parts, (given.prefill, False))))


def _sampling(body: MessagesRequest, params: Mapping[str, Any]) -> SpecSampling:
    """The request's sampling fields, else the Modelfile's."""
    values = {k: getattr(body, k) if getattr(body, k) is not None else params.get(k) for k in _FROM_MODELFILE}
    return SpecSampling(**values)


def _request(service: Service, lease: Lease, body: MessagesRequest, plan: Any, params: Mapping[str, Any],
             timeout: float | None) -> GenerationRequest:
    return spec_request(plan.prompt_input, _sampling(body, params), max_tokens=body.max_tokens, grammar=plan.grammar,
                        timeout=timeout, stop=stops(body.stop_sequences), add_special=False, parse_special=True,
                        stream_interval=service.stream_interval(body.stream), metadata=lease.info.metadata)


def _keep_alive(value: Any) -> float | None:
    """The ``keep_alive`` extension in seconds, as on the other endpoints (negative: forever)."""
    if value is None or value == "":
        return None
    try:
        return parse_keep_alive(value)
    except ValueError as exc:
        raise InvalidParameterError(str(exc), field="keep_alive") from None


async def create_message(body: MessagesRequest, request: Request, service: ServiceDep) -> Response:
    timeout = request_timeout(service, body.timeout, request.headers)
    defaults = await service.model_defaults(body.model)
    _, show_thinking = think_of(body.thinking, body.max_tokens)

    async def build(lease: Lease) -> TurnPlan:
        plan = await _plan(service, lease, body, defaults)
        return TurnPlan([_request(service, lease, body, plan, defaults.parameters, timeout)], plan)

    turn = await start_turn(service, body.model, build=build, keep_alive=_keep_alive(body.keep_alive),
                            gone=disconnected(request.receive))
    reply = Reply(service, turn, body, show_thinking)
    if not body.stream:
        async with turn:
            collected = await turn.collect()
            return JSONResponse(await reply.whole(collected[0].result))
    firsts = await turn.first_events()
    return WatchedStreamingResponse(message_events(reply, firsts), media_type="text/event-stream",
                                    on_close=[turn.close])


async def count_tokens(body: CountTokensRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    defaults = await service.model_defaults(body.model)
    gone = disconnected(request.receive)
    lease = await service.acquire(body.model, gone=gone)
    with lease:
        plan = await _plan(service, lease, body, defaults)
        prompt = plan.prompt_input
        if isinstance(prompt, PromptSegments):
            tokens = await service.tokenize_parts(lease, prompt.parts, add_special=False)
        else:
            tokens = await service.tokenize(lease, prompt, add_special=False, parse_special=True)
    return {"input_tokens": len(tokens)}
