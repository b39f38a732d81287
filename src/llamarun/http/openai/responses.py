"""OpenAI's Responses API: ``POST /v1/responses`` (whole or streamed), ``GET``/``DELETE
/v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``.

A thin translation onto the chat path: the input items (after the stored conversation of
``previous_response_id``) become chat messages, function tools and ``text.format`` become the
chat plan's tools and grammar, and the turn runs through :func:`.answer.open_turn` like a chat
completion. Responses are kept (``store``, the default) in a bounded :class:`.ResponseStore`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ...errors import InvalidParameterError, LlamarunError, UnsupportedFeatureError
from ...runtime import Lease
from ...serving import Service, Turn, TurnPlan, codes_of
from ..context import ServiceDep
from ..streaming import WatchedStreamingResponse
from .answer import SSE, open_turn
from .fields import body_request
from .responses_input import (
    chat_format,
    chat_tool_choice,
    chat_tools,
    check_request,
    input_items,
    input_messages,
    sampling_body,
    think_of,
)
from .responses_output import ResponseDraft, reasoning_tokens
from .responses_schemas import ResponseCreateRequest
from .responses_store import ResponseStore
from .responses_stream import ResponseEvents
from .schemas import SamplingFields

__all__ = ["cancel_response", "create_response", "delete_response", "get_response", "response_store"]

logger = logging.getLogger(__name__)


async def response_store(request: Request) -> ResponseStore:
    """The app's store of responses (``app.state.responses``; async: no worker-thread hop)."""
    return request.app.state.responses  # type: ignore[no-any-return]


StoreDep = Annotated[ResponseStore, Depends(response_store)]


async def _conversation(service: Service, store: ResponseStore, body: ResponseCreateRequest) -> tuple[list, list]:
    """(the earlier responses' items, this request's items)."""
    history: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        if body.previous_response_id in store.live:
            raise InvalidParameterError(f"previous_response_id {body.previous_response_id!r} is still being "
                                        "generated", field="previous_response_id")
        history = await service.blocking(store.conversation, body.previous_response_id)
    return history, input_items(body.input)


async def _open(service: Service, request: Request, body: ResponseCreateRequest,
                messages: list[dict[str, Any]]) -> Turn:
    tools, choice = chat_tools(body.tools), chat_tool_choice(body.tool_choice)
    response_format, think = chat_format(body.text), think_of(body.reasoning)
    parallel = body.parallel_tool_calls is not False

    async def build(lease: Lease, sampling: SamplingFields, defaults: Any, timeout: float | None) -> TurnPlan:
        plan = await service.prepare_chat(lease, messages, defaults=defaults, tools=tools, tool_choice=choice,
                                          parallel_tool_calls=parallel, response_format=response_format, think=think)
        spec = body_request(sampling, plan.prompt_input, max_tokens=sampling.max_tokens, grammar=plan.grammar,
                            timeout=timeout, add_special=False, parse_special=True,
                            stream_interval=service.stream_interval(body.stream), metadata=lease.info.metadata)
        return TurnPlan([spec], plan)

    sampling = sampling_body(body)
    return await open_turn(service, request, sampling, has_max=body.max_output_tokens is not None, build=build)


async def create_response(body: ResponseCreateRequest, request: Request, service: ServiceDep,
                          store: StoreDep) -> Response:
    check_request(body)
    if body.store and store.path is None:
        raise UnsupportedFeatureError("this server keeps no responses: send store=false", field="store")
    history, items = await _conversation(service, store, body)
    messages = input_messages(history + items, body.instructions, offset=len(history))
    turn = await _open(service, request, body, messages)
    draft = ResponseDraft(body, parallel_tool_calls=body.parallel_tool_calls is not False)
    draft.turn = turn
    store.live[draft.id] = draft

    async def done(finished: ResponseDraft) -> None:  # stored before the caller can ask for it
        store.live.pop(finished.id, None)
        if body.store:
            try:
                await service.blocking(store.put, finished.object(), items)
            except LlamarunError as exc:
                logger.error("could not store response %s: %s", finished.id, exc)

    if body.stream:
        try:
            firsts = await turn.first_events()
        except BaseException:
            store.live.pop(draft.id, None)
            raise
        events = ResponseEvents(draft, turn, done, service)
        return WatchedStreamingResponse(events.stream(firsts), media_type=SSE,
                                        on_close=[turn.close, lambda: store.live.pop(draft.id, None)])
    try:
        async with turn:  # the lease is held while the reasoning tokens are counted
            result = (await turn.collect())[0].result
            output = turn.plan.chat.parse(result.text)
            reasoning = await reasoning_tokens(service, turn, result, output.thinking)
        draft.finish(result, output, reasoning_tokens=reasoning)
    except LlamarunError as exc:
        if not draft.cancelled:
            store.live.pop(draft.id, None)
            raise
        draft.fail(exc, codes_of(exc).bridge)
    except BaseException:
        store.live.pop(draft.id, None)
        raise
    await done(draft)
    return JSONResponse(draft.object())


def _not_found(response_id: str) -> HTTPException:
    return HTTPException(404, f"no stored response {response_id[:80]!r}")


async def get_response(response_id: str, service: ServiceDep, store: StoreDep, stream: bool = False) -> Response:
    if stream:
        raise UnsupportedFeatureError("streaming a stored response again is not supported", field="stream")
    live = store.live.get(response_id)
    if live is not None:
        return JSONResponse(live.object())
    stored = await service.blocking(store.get, response_id)
    if stored is None:
        raise _not_found(response_id)
    return JSONResponse(stored.response)


async def delete_response(response_id: str, service: ServiceDep, store: StoreDep) -> Response:
    if response_id in store.live:
        raise InvalidParameterError("the response is still being generated: cancel it first", field="response_id")
    if not await service.blocking(store.delete, response_id):
        raise _not_found(response_id)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


async def cancel_response(response_id: str, service: ServiceDep, store: StoreDep) -> Response:
    """Stop a response being generated (streamed or not); a finished one cannot be cancelled."""
    live = store.live.get(response_id)
    if live is None:
        stored = await service.blocking(store.get, response_id)
        if stored is None:
            raise _not_found(response_id)
        raise InvalidParameterError(f"response {response_id[:80]!r} has already ended "
                                    f"({stored.response.get('status')}): only one being generated can be cancelled",
                                    field="response_id")
    live.cancel()
    answer = live.object()
    answer["status"] = "cancelled"
    return JSONResponse(answer)
