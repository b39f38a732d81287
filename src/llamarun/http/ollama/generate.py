"""Ollama's generation endpoints: ``/api/generate`` and ``/api/chat`` (and their load/unload forms)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import InvalidParameterError, UnsupportedFeatureError
from ...runtime import Lease
from ...serving import Service, load_options, with_modelfile_options
from ...types import PromptSegments
from ..context import ServiceDep
from ..streaming import disconnected
from .schemas import ChatRequest, GenerateRequest, Message, Options
from .stream import now_rfc3339, respond
from .turn import Prepared, run_turn

__all__ = ["generation_router"]


def generation_router() -> APIRouter:
    router = APIRouter(tags=["ollama"])
    router.add_api_route("/api/generate", generate, methods=["POST"])
    router.add_api_route("/api/chat", chat, methods=["POST"])
    return router


async def generate(body: GenerateRequest, request: Request, service: ServiceDep) -> Response:
    started = time.monotonic()
    _check_unsupported(body.images, body.template, body.suffix)
    defaults = await service.model_defaults(body.model)
    body = body.model_copy(update={"options": with_modelfile_options(body.options, defaults.parameters)})
    if not body.prompt and not body.context:
        return respond(await _load_or_unload(service, body.model, body.keep_alive, request, False, body.options),
                       body.stream)

    async def prepare(lease: Lease) -> Prepared:
        return await _prepare_generate(service, lease, body, defaults)

    return await run_turn(service, request, body, chat=False, started=started, prepare=prepare)


async def chat(body: ChatRequest, request: Request, service: ServiceDep) -> Response:
    started = time.monotonic()
    for m in body.messages:
        _check_unsupported(m.images, None)
    defaults = await service.model_defaults(body.model)
    body = body.model_copy(update={"options": with_modelfile_options(body.options, defaults.parameters)})
    if not body.messages:
        return respond(await _load_or_unload(service, body.model, body.keep_alive, request, True, body.options),
                       body.stream)

    async def prepare(lease: Lease) -> Prepared:
        plan = await service.prepare_chat(lease, [_message(m) for m in body.messages], defaults=defaults,
                                          tools=body.tools or None,
                                          tool_choice="auto" if body.tools else None,
                                          response_format=body.format, think=_think(body.think, lease))
        return Prepared(plan.prompt_input, plan.grammar, plan)

    return await run_turn(service, request, body, chat=True, started=started, prepare=prepare)


async def _prepare_generate(service: Service, lease: Lease, body: GenerateRequest, defaults: Any) -> Prepared:
    """A raw prompt (with its format's grammar), or the model's chat template around system + prompt
    (the Modelfile's SYSTEM and MESSAGEs when the request has none); with ``context``, the previous
    turn's tokens followed by this prompt's (then without the Modelfile's MESSAGEs, as Ollama does)."""
    plan, prompt, context = None, body.prompt, None
    if body.raw:
        grammar = await service.response_grammar(body.format)
    else:
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
            {"role": "user", "content": body.prompt}]
        if body.context and defaults:
            defaults = dataclasses.replace(defaults, messages=())
        plan = await service.prepare_chat(lease, messages, defaults=defaults, response_format=body.format,
                                          think=_think(body.think, lease))
        prompt, grammar = plan.prompt_input, plan.grammar
    tokens: str | PromptSegments | list[int] = prompt
    if body.context:  # a raw prompt is the client's whole prompt: its control-token text is parsed
        parts = prompt.parts if isinstance(prompt, PromptSegments) else ((prompt, True),)
        context = [*body.context, *await service.tokenize_parts(lease, parts, add_special=False)]
        tokens = context
    return Prepared(tokens, grammar, plan, context=context, add_special=body.raw)


async def _load_or_unload(service: Service, model: str, keep_alive: float | None, request: Request, chat: bool,
                          options: Options | None) -> dict[str, Any]:
    """An empty prompt loads the model (``keep_alive`` 0: unloads it) and answers at once."""
    base: dict[str, Any] = {"model": model, "created_at": now_rfc3339()}
    base.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
    if keep_alive is not None and keep_alive == 0:
        await service.blocking(service.manager.resolve, model)  # 404 for unknown models
        await service.blocking(service.manager.unload, model)
        return {**base, "done": True, "done_reason": "unload"}
    lease = await service.acquire(model, load_options(options), keep_alive, gone=disconnected(request.receive))
    lease.release()
    return {**base, "done": True, "done_reason": "load"}


def _check_unsupported(images: Any, template: str | None, suffix: str = "") -> None:
    if images:
        raise UnsupportedFeatureError("this server does not support images (no vision models)", field="images")
    if template:
        raise InvalidParameterError("template overrides are not accepted: the model's own chat template is "
                                    "used (use raw=true to send a fully formatted prompt)", field="template")
    if suffix:
        raise UnsupportedFeatureError("suffix (fill-in-the-middle) is not supported", field="suffix")


def _think(think: Any, lease: Lease) -> bool | None:
    if think is None or think is False:
        return None if think is None else False
    info = lease.info
    from ...chat import thinking_markers

    if thinking_markers(info.chat_template) is None:
        raise UnsupportedFeatureError(f'"{lease.name}" does not support thinking', field="think")
    return True


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
