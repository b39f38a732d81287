"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` on the serving layer."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ...config import parse_keep_alive
from ...errors import InvalidParameterError
from ...runtime import GenerationRequest, Lease
from ...serving import (
    Service,
    SpecSampling,
    Turn,
    TurnPlan,
    spec_request,
    start_turn,
    stops,
)
from ...types import FinishReason, GenerationResult, PromptSegments
from ..context import ServiceDep, request_timeout
from ..streaming import WatchedStreamingResponse, disconnected
from .convert import chat_input, response_format, think_of, tool_choice_of, tools_of
from .schemas import CountTokensRequest, MessagesRequest

__all__ = ["count_tokens", "create_message", "stop_of", "usage_of"]

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
    from .stream import message_events

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


def usage_of(result: GenerationResult | None, *, prompt_tokens: int = 0, cached: int = 0) -> dict[str, Any]:
    """Anthropic's usage: input_tokens excludes the tokens read from the prompt cache."""
    if result is not None:
        prompt_tokens, cached = result.prompt_tokens, result.cached_tokens
    output = result.completion_tokens if result is not None else 0
    return {"input_tokens": max(0, prompt_tokens - cached), "output_tokens": output,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


async def stop_of(service: Service, turn: Turn, result: GenerationResult, sequences: Sequence[str],
                  tool_use: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): which of the request's stop sequences ended the text, if one did."""
    if tool_use:
        return "tool_use", None
    if result.finish_reason in (FinishReason.LENGTH, FinishReason.DEADLINE):
        return "max_tokens", None
    wanted = stops(sequences)
    if not wanted or not result.token_ids:
        return "end_turn", None
    ids = list(result.token_ids)
    full = await service.engine_call(turn.lease, lambda m: m.detokenize(ids))
    found = [(full.find(s), s) for s in wanted if full.find(s) >= 0]
    return ("stop_sequence", min(found)[1]) if found else ("end_turn", None)


class Reply:
    """One Messages answer: its identity and how its parts read as Anthropic's content blocks."""

    def __init__(self, service: Service, turn: Turn, body: MessagesRequest, show_thinking: bool) -> None:
        self.service, self.turn, self.body, self.show_thinking = service, turn, body, show_thinking
        self.id = f"msg_{uuid.uuid4().hex[:24]}"

    def head(self, content: list[dict[str, Any]], stop: tuple[str | None, str | None],
             usage: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.body.model,
                "content": content, "stop_reason": stop[0], "stop_sequence": stop[1], "usage": usage}

    def thinking_block(self, text: str) -> dict[str, Any]:
        return {"type": "thinking", "thinking": text if self.show_thinking else "", "signature": ""}

    async def whole(self, result: GenerationResult) -> dict[str, Any]:
        output = self.turn.plan.chat.parse(result.text)
        content: list[dict[str, Any]] = []
        if output.thinking:
            content.append(self.thinking_block(output.thinking))
        if output.content or not (output.thinking or output.tool_calls):
            content.append({"type": "text", "text": output.content})
        content += [tool_use_block(call) for call in output.tool_calls]
        stop = await stop_of(self.service, self.turn, result, self.body.stop_sequences or (),
                             bool(output.tool_calls))
        return self.head(content, stop, usage_of(result))


def tool_use_block(call: Any, *, with_input: bool = True) -> dict[str, Any]:
    call_id = call.id if call.id.startswith("toolu_") else f"toolu_{call.id.removeprefix('call_')}"
    return {"type": "tool_use", "id": call_id, "name": call.name, "input": dict(call.arguments) if with_input else {}}
