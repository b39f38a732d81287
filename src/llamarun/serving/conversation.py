"""Chat and prompt turns in the serving layer's own terms, for every frontend that speaks Ollama's
vocabulary (the Ollama API, gRPC, the socket bridge, Ray Serve replicas).

    turn = await start_chat(service, TurnRequest("smollm2", messages=[...]), gone=gone)

The model's Modelfile defaults apply where the request gives none; the chat
template, tools, response format and thinking make the chat plan; the options
make the request (:func:`options_request`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterError, UnsupportedFeatureError
from ..runtime import Lease
from ..types import PromptSegments
from .cancel import Gone
from .options import Options
from .sampling import load_options, options_request, with_modelfile_options
from .service import Service
from .turn import Turn, TurnPlan, start_turn

__all__ = ["TurnRequest", "load_or_unload", "start_chat", "start_prompt"]


@dataclass(frozen=True)
class TurnRequest:
    """One chat (``messages``) or prompt (``prompt``) turn and how to run it."""

    model: str
    messages: Sequence[Mapping[str, Any]] = ()
    prompt: str = ""
    system: str | None = None  # a prompt turn's system message
    raw: bool = False  # a prompt turn: the prompt is sent as it is (no chat template)
    context: Sequence[int] | None = None  # a prompt turn: the previous turn's tokens (Ollama's context)
    options: Options | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    format: str | Mapping[str, Any] | None = None  # "json" or a JSON schema
    grammar: str | None = None  # a GBNF grammar (checked; not together with ``format``)
    think: bool | None = None
    logprobs: int = 0  # alternatives per token (0: no log-probabilities)
    truncate: bool = False  # cut a prompt that is too long instead of refusing it
    keep_alive: float | None = None
    timeout: float | None = None  # seconds (None: the server's default)
    stream: bool = True
    template_name: str | None = None  # a built-in chat template instead of the model's (llama.cpp's names)


def _think(think: bool | None, lease: Lease) -> bool | None:
    if not think:
        return think
    from ..chat import thinking_markers

    if thinking_markers(lease.info.chat_template) is None:
        raise UnsupportedFeatureError(f'"{lease.name}" does not support thinking', field="think")
    return True


async def _raw_grammar(service: Service, req: TurnRequest) -> str | None:
    """A raw prompt's grammar: its GBNF ``grammar`` (checked) or its ``format``'s, never both."""
    if req.grammar is None:
        return await service.response_grammar(req.format)
    if req.format not in (None, "", "text"):
        raise InvalidParameterError("pass either a grammar or a format, not both", field="grammar")
    from ..grammar import check_gbnf

    await service.blocking(check_gbnf, req.grammar)
    return req.grammar


async def _start(service: Service, req: TurnRequest, gone: Gone | None, prepare: Any) -> Turn:
    defaults = await service.model_defaults(req.model)
    options = with_modelfile_options(req.options, defaults.parameters)
    timeout = service.timeout(req.timeout)

    async def build(lease: Lease) -> TurnPlan:
        prompt, grammar, plan, context = await prepare(lease, defaults)
        spec = options_request(prompt, options, grammar=grammar, timeout=timeout, logprobs=req.logprobs,
                               truncate=req.truncate, add_special=req.raw and not req.messages,
                               parse_special=True, stream_interval=service.stream_interval(req.stream),
                               metadata=lease.info.metadata)
        return TurnPlan([spec], plan, context)

    return await start_turn(service, req.model, build=build, load=load_options(options),
                            keep_alive=req.keep_alive, gone=gone)


async def start_chat(service: Service, req: TurnRequest, *, gone: Gone | None = None) -> Turn:
    """A chat turn: ``messages`` through the model's chat template (or the Modelfile's)."""
    async def prepare(lease: Lease, defaults: Any) -> tuple[Any, ...]:
        plan = await service.prepare_chat(lease, req.messages, defaults=defaults, tools=req.tools or None,
                                          tool_choice="auto" if req.tools else None, response_format=req.format,
                                          grammar=req.grammar, think=_think(req.think, lease),
                                          template_name=req.template_name)
        return plan.prompt_input, plan.grammar, plan, None

    return await _start(service, req, gone, prepare)


async def start_prompt(service: Service, req: TurnRequest, *, gone: Gone | None = None) -> Turn:
    """A prompt turn: raw (with its format's grammar), or the chat template around system + prompt
    (the Modelfile's SYSTEM and MESSAGEs when the request has none); with ``context``, the previous
    turn's tokens followed by this prompt's (then without the Modelfile's MESSAGEs, as Ollama does)."""
    async def prepare(lease: Lease, defaults: Any) -> tuple[Any, ...]:
        plan, prompt = None, req.prompt
        if req.raw:
            grammar = await _raw_grammar(service, req)
        else:
            messages = ([{"role": "system", "content": req.system}] if req.system else []) + [
                {"role": "user", "content": req.prompt}]
            if req.context and defaults:
                defaults = dataclasses.replace(defaults, messages=())
            plan = await service.prepare_chat(lease, messages, defaults=defaults, response_format=req.format,
                                              grammar=req.grammar, think=_think(req.think, lease),
                                              template_name=req.template_name)
            prompt, grammar = plan.prompt_input, plan.grammar
        if req.raw and not req.context:  # Ollama returns no context for a raw prompt
            return prompt, grammar, plan, None
        # a raw prompt is the client's whole prompt: its control-token text is parsed
        parts = prompt.parts if isinstance(prompt, PromptSegments) else ((prompt, True),)
        context = [*(req.context or ()), *await service.tokenize_parts(lease, parts, add_special=False)]
        return context, grammar, plan, context  # the tokens come back with the answer, for the next turn

    return await _start(service, req, gone, prepare)


async def load_or_unload(service: Service, model: str, *, options: Options | None = None,
                         keep_alive: float | None = None, gone: Gone | None = None) -> str:
    """Load ``model`` (``keep_alive`` 0: unload it) and say which: ``"load"`` or ``"unload"``."""
    if keep_alive is not None and keep_alive == 0:
        await service.blocking(service.manager.resolve, model)  # ModelNotFoundError for unknown models
        await service.blocking(service.manager.unload, model)
        return "unload"
    lease = await service.acquire(model, load_options(options), keep_alive, gone=gone)
    lease.release()
    return "load"
