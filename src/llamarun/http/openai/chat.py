"""``POST /v1/chat/completions``: the chat template, tools and response formats; whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...runtime import Lease
from ...serving import Collected, Event, Pieces, TurnPlan
from ...types import Chunk, TokenLogprob
from ..context import ServiceDep
from ..streaming import SseTemplate, sse
from .answer import Answer, finish_reason, open_turn
from .fields import body_request, chat_message, checked_grammar, constraint, refuse_unhonoured, think_of_effort
from .schemas import ChatCompletionRequest

__all__ = ["chat_completions"]


_UNHONOURED = ("audio", "modalities", "prediction", "web_search_options", "functions", "function_call", "store")


async def chat_completions(body: ChatCompletionRequest, request: Request, service: ServiceDep) -> Response:
    refuse_unhonoured(body, _UNHONOURED, {"modalities": ["text"]})
    messages = [chat_message(m) for m in body.messages]
    response_format, grammar = constraint(body)
    await checked_grammar(service, grammar)
    think = think_of_effort(body.reasoning_effort)

    async def build(lease: Lease, body: ChatCompletionRequest, defaults: Any, timeout: float | None) -> TurnPlan:
        plan = await service.prepare_chat(
            lease, messages, defaults=defaults, tools=body.tools or None, tool_choice=body.tool_choice,
            parallel_tool_calls=bool(body.parallel_tool_calls), response_format=response_format, grammar=grammar,
            think=think, template_name=body.template_name)
        top = (body.top_logprobs or 1) if body.logprobs else 0
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        specs = [body_request(body, plan.prompt_input, max_tokens=max_tokens, grammar=plan.grammar,
                              timeout=timeout, logprobs=top, seed_offset=i, add_special=False, parse_special=True,
                              stream_interval=service.stream_interval(body.stream), metadata=lease.info.metadata)
                 for i in range(body.n)]
        return TurnPlan(specs, plan)

    has_max = body.max_tokens is not None or body.max_completion_tokens is not None
    turn = await open_turn(service, request, body, has_max=has_max, build=build)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    answer = ChatAnswer(service, turn, model=body.model, logprobs=body.logprobs, include_usage=include_usage)
    return await answer.respond(body.stream)


def chat_logprobs(items: Sequence[TokenLogprob], piece: Pieces) -> dict[str, Any]:
    def entry(token: int, logprob: float) -> dict[str, Any]:
        text = piece(token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [{**entry(lp.token, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]}
                        for lp in items]}


def _delta(delta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if delta.content:
        out["content"] = delta.content
    if delta.thinking:
        out["reasoning_content"] = delta.thinking
    return out


class ChatAnswer(Answer):
    object_name = "chat.completion"
    chunk_name = "chat.completion.chunk"
    prefix = "chatcmpl"

    async def choice(self, index: int, collected: Collected) -> dict[str, Any]:
        output = self.turn.plan.chat.parse(collected.result.text)
        message: dict[str, Any] = {"role": "assistant", "content": output.content or None}
        if output.thinking:
            message["reasoning_content"] = output.thinking
        if output.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in output.tool_calls]
        else:
            message["content"] = output.content
        choice: dict[str, Any] = {"index": index, "message": message, "logprobs": None,
                                  "finish_reason": finish_reason(collected.result, bool(output.tool_calls))}
        if self.logprobs:
            pieces = await self.service.token_pieces(self.turn.lease, collected.logprobs)
            choice["logprobs"] = chat_logprobs(collected.logprobs, pieces)
        return choice

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> dict[str, Any]:
        return self.head(choices=[{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}])

    async def chunks(self, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
        n = len(self.turn.requests)
        parsers = [self.turn.plan.chat.stream_parser() for _ in range(n)]
        texts = [SseTemplate(self._chunk(i, {"content": SseTemplate.hole()})) for i in range(n)]

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> bytes:
            if finish is None and lp is None and delta.keys() == {"content"}:
                return texts[index].render(delta["content"])
            return sse(self._chunk(index, delta, finish, lp))

        for index in range(n):
            yield chunk(index, {"role": "assistant", "content": ""})
        async for index, event in self.turn.events(firsts):
            parser = parsers[index]
            if isinstance(event, Chunk):
                if not event.text and not event.logprobs:
                    continue
                delta = parser.feed(event.text)
                lp = None
                if self.logprobs and event.logprobs:
                    lp = chat_logprobs(event.logprobs, await self.service.token_pieces(self.turn.lease,
                                                                                     event.logprobs))
                if delta.content or delta.thinking or lp:
                    yield chunk(index, _delta(delta), lp=lp)
                continue
            self.results.append(event)
            delta, output = parser.finish()
            if delta.content or delta.thinking:
                yield chunk(index, _delta(delta))
            if output.tool_calls:
                calls = [{"index": i, **call.to_openai()} for i, call in enumerate(output.tool_calls)]
                yield chunk(index, {"tool_calls": calls})
            yield chunk(index, {}, finish_reason(event, bool(output.tool_calls)))
