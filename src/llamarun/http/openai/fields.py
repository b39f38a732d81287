"""OpenAI request fields -> the serving layer's requests: sampling, Modelfile defaults, keep_alive, messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...config import parse_keep_alive
from ...errors import InvalidParameterError, UnsupportedFeatureError
from ...grammar import check_gbnf
from ...runtime import GenerationRequest
from ...serving import Service, SpecSampling, spec_request, stops
from ...types import PromptSegments
from .schemas import ChatMessage, SamplingFields

__all__ = ["body_request", "chat_message", "checked_grammar", "constraint", "keep_alive_of", "refuse_unhonoured",
           "think_of_effort", "with_modelfile_sampling"]

_FREE_TEXT = (None, "", "text", {"type": "text"})

_FROM_MODELFILE = ("temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty",
                   "presence_penalty", "frequency_penalty", "seed", "stop")


def with_modelfile_sampling(body: Any, params: Mapping[str, Any], *, has_max: bool) -> Any:
    """An OpenAI request body with the Modelfile's parameters where it gives none (``num_predict``
    becomes ``max_tokens`` unless the request sets a limit: ``has_max``)."""
    update = {k: params[k] for k in _FROM_MODELFILE if k in params and getattr(body, k) is None}
    predict = params.get("num_predict")
    if predict is not None and predict >= 0 and not has_max:
        update["max_tokens"] = predict
    return body.model_copy(update=update) if update else body


def body_request(body: SamplingFields, prompt: str | Sequence[int] | PromptSegments, *, max_tokens: int | None,
                 grammar: str | None, timeout: float | None, logprobs: int = 0, seed_offset: int = 0,
                 add_special: bool = True, parse_special: bool = True, stream_interval: int = 1,
                 metadata: Mapping[str, str] | None = None) -> GenerationRequest:
    """The request of one choice (``seed_offset``: its index, so that ``n`` choices differ)."""
    given = SpecSampling(
        temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p,
        typical_p=body.typical_p, repeat_penalty=body.repeat_penalty, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, seed=body.seed,
        logit_bias={int(k): float(v) for k, v in (body.logit_bias or {}).items()},
        speculative=body.speculative.speculation() if body.speculative is not None else None)
    return spec_request(prompt, given, max_tokens=max_tokens, grammar=grammar, timeout=timeout,
                        stop=stops(body.stop), ignore_eos=body.ignore_eos, truncate=body.truncate,
                        logprobs=logprobs, seed_offset=seed_offset, add_special=add_special,
                        parse_special=parse_special, stream_interval=stream_interval, metadata=metadata)


def keep_alive_of(value: Any) -> float | None:
    """The request's ``keep_alive`` extension in seconds (negative: forever; above 1e9 s refused)."""
    if value is None or value == "":
        return None
    try:
        return parse_keep_alive(value)
    except ValueError as exc:
        raise InvalidParameterError(str(exc), field="keep_alive") from None


def chat_message(m: ChatMessage) -> dict[str, Any]:
    """One message as the chat template takes it (text parts joined; other parts refused)."""
    content = m.content
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type")
            if kind in ("text", "input_text"):
                parts.append(str(part.get("text", "")))
            else:
                raise UnsupportedFeatureError(f"message content of type {str(kind)[:40]!r} is not supported "
                                              "(text only)", field="messages")
        content = "".join(parts)
    role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
    message: dict[str, Any] = {"role": role, "content": content or ""}
    if m.tool_calls:
        message["tool_calls"] = m.tool_calls
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    if m.name:
        message["name"] = m.name
    return message


def constraint(body: Any) -> tuple[Any, str | None]:
    """The body's output constraint as (response_format, GBNF grammar): OpenAI's ``response_format``,
    or llama-server's ``json_schema`` or ``grammar`` extension; more than one is a 400."""
    response_format = getattr(body, "response_format", None)
    given = [name for name, value in (("response_format", response_format), ("json_schema", body.json_schema),
                                      ("grammar", body.grammar)) if value not in _FREE_TEXT]
    if len(given) > 1:
        raise InvalidParameterError(f"pass one of {' / '.join(given)}, not several", field=given[1])
    if body.json_schema not in _FREE_TEXT:
        return {"type": "json_schema", "json_schema": {"name": "json_schema", "schema": body.json_schema}}, None
    return response_format, body.grammar or None


async def checked_grammar(service: Service, grammar: str | None) -> str | None:
    """``grammar`` once llama.cpp can safely take it (:class:`GrammarError`, a 400, otherwise): checked
    on the thread pool before any model is acquired."""
    if grammar is not None:
        await service.blocking(check_gbnf, grammar)
    return grammar


def refuse_unhonoured(body: Any, names: Sequence[str], allowed: Mapping[str, Any] | None = None) -> None:
    """A 400 naming the first of ``names`` the body sets (to a value other than ``allowed[name]``):
    fields llamarun knows but cannot honour are refused, never dropped."""
    for name in names:
        value = getattr(body, name, None)
        if value is None or value is False or (allowed is not None and value == allowed.get(name, ...)):
            continue
        raise UnsupportedFeatureError(f"{name} is not supported by this server", field=name)


def think_of_effort(effort: str | None) -> bool | None:
    """OpenAI's reasoning effort as the chat template's ``enable_thinking`` (None: the template's default)."""
    if effort is None:
        return None
    if effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        raise InvalidParameterError(f"reasoning effort must be none, minimal, low, medium, high or xhigh, "
                                    f"got {str(effort)[:20]!r}", field="reasoning_effort")
    return effort not in ("none", "minimal")
