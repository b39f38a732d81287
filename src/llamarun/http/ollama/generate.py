"""Ollama's generation endpoints: ``/api/generate`` and ``/api/chat`` (and their load/unload forms)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import InvalidParameterError, UnsupportedFeatureError
from ...serving import Service, Turn, TurnRequest, load_or_unload, start_chat, start_prompt
from ..context import ServiceDep, request_timeout
from ..ignored import IgnoredFieldsRoute
from ..streaming import disconnected
from .schemas import ChatRequest, GenerateRequest, Message
from .stream import now_rfc3339, respond
from .turn import OllamaAnswer

__all__ = ["generation_router"]


def generation_router() -> APIRouter:
    router = APIRouter(tags=["ollama"], route_class=IgnoredFieldsRoute)
    router.add_api_route("/api/generate", generate, methods=["POST"])
    router.add_api_route("/api/chat", chat, methods=["POST"])
    return router


def _turn_request(body: GenerateRequest | ChatRequest, service: Service, request: Request,
                  **fields: Any) -> TurnRequest:
    """The serving layer's request for a body (``options.timeout`` wins over the top-level one)."""
    body_timeout = body.options.timeout if body.options and body.options.timeout is not None else body.timeout
    return TurnRequest(
        model=body.model, options=body.options, format=body.format,
        think=None if body.think is None else bool(body.think),
        logprobs=max(1, body.top_logprobs) if body.logprobs else 0, truncate=bool(body.truncate),
        keep_alive=body.keep_alive, timeout=request_timeout(service, body_timeout, request.headers),
        stream=body.stream, template_name=body.template_name, **fields)


async def generate(body: GenerateRequest, request: Request, service: ServiceDep) -> Response:
    started = time.monotonic()
    _check_unsupported(body.images, body.template, body.suffix)
    if not body.prompt and not body.context:
        return respond(await _load_or_unload(service, body, request, chat=False), body.stream)
    req = _turn_request(body, service, request, prompt=body.prompt, system=body.system, raw=body.raw,
                        context=body.context)
    turn = await start_prompt(service, req, gone=disconnected(request.receive))
    return await _answer(service, turn, body, chat=False, started=started)


async def chat(body: ChatRequest, request: Request, service: ServiceDep) -> Response:
    started = time.monotonic()
    for m in body.messages:
        _check_unsupported(m.images, None)
    if not body.messages:
        return respond(await _load_or_unload(service, body, request, chat=True), body.stream)
    req = _turn_request(body, service, request, messages=[_message(m) for m in body.messages],
                        tools=body.tools or None)
    turn = await start_chat(service, req, gone=disconnected(request.receive))
    return await _answer(service, turn, body, chat=True, started=started)


async def _answer(service: Service, turn: Turn, body: GenerateRequest | ChatRequest, *, chat: bool,
                  started: float) -> Response:
    answer = OllamaAnswer(service, turn, chat=chat, model=body.model, started=started, logprobs=body.logprobs)
    return await answer.respond(body.stream)


async def _load_or_unload(service: Service, body: GenerateRequest | ChatRequest, request: Request, *,
                          chat: bool) -> dict[str, Any]:
    """An empty prompt loads the model (``keep_alive`` 0: unloads it) and answers at once."""
    done = await load_or_unload(service, body.model, options=body.options, keep_alive=body.keep_alive,
                                gone=disconnected(request.receive))
    base: dict[str, Any] = {"model": body.model, "created_at": now_rfc3339()}
    base.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
    return {**base, "done": True, "done_reason": done}


def _check_unsupported(images: Any, template: str | None, suffix: str = "") -> None:
    if images:
        raise UnsupportedFeatureError("this server does not support images (no vision models)", field="images")
    if template:
        raise InvalidParameterError("template overrides are not accepted: the model's own chat template is "
                                    "used (use raw=true to send a fully formatted prompt)", field="template")
    if suffix:
        raise UnsupportedFeatureError("suffix (fill-in-the-middle) is not supported", field="suffix")


def _message(m: Message) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.content}
    if m.tool_calls:
        message["tool_calls"] = [{"type": "function", "function": {"name": c.function.name,
                                                                    "arguments": c.function.arguments}}
                                 for c in m.tool_calls]
    if m.tool_name:
        message["name"] = m.tool_name
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    if m.thinking:
        message["thinking"] = m.thinking
    return message
