"""``POST /v1/completions``: a raw prompt (text or token ids); whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...errors import UnsupportedFeatureError
from ...runtime import Lease
from ...serving import Collected, Event, Pieces, TurnPlan
from ...types import Chunk, TokenLogprob
from ..context import ServiceDep
from ..streaming import SseTemplate, sse
from .answer import Answer, finish_reason, open_turn, usage
from .fields import body_request, checked_grammar, constraint
from .schemas import CompletionRequest

__all__ = ["completions"]


def _single_prompt(body: CompletionRequest) -> Any:
    if body.echo or (body.best_of or 1) > 1 or body.suffix:
        field = "echo" if body.echo else "best_of" if (body.best_of or 1) > 1 else "suffix"
        raise UnsupportedFeatureError(f"{field} is not supported", field=field)
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise UnsupportedFeatureError("one prompt per request (use n for several completions)",
                                          field="prompt")
        prompt = prompt[0]
    return prompt


async def completions(body: CompletionRequest, request: Request, service: ServiceDep) -> Response:
    prompt = _single_prompt(body)
    response_format, grammar = constraint(body)
    grammar = await checked_grammar(service, grammar) or await service.response_grammar(response_format)

    async def build(lease: Lease, body: CompletionRequest, defaults: Any, timeout: float | None) -> TurnPlan:
        max_tokens = 16 if body.max_tokens is None else body.max_tokens
        specs = [body_request(body, prompt, max_tokens=max_tokens, grammar=grammar, timeout=timeout,
                              logprobs=body.logprobs or 0, seed_offset=i,
                              stream_interval=service.stream_interval(body.stream), metadata=lease.info.metadata)
                 for i in range(body.n)]
        return TurnPlan(specs)

    turn = await open_turn(service, request, body, has_max=body.max_tokens is not None, build=build)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    answer = CompletionAnswer(service, turn, model=body.model, logprobs=body.logprobs is not None,
                              include_usage=include_usage)
    return await answer.respond(body.stream)


def completion_logprobs(items: Sequence[TokenLogprob], piece: Pieces, offset: int = 0) -> dict[str, Any]:
    tokens, offsets, position = [], [], offset
    for lp in items:
        text = piece(lp.token)
        tokens.append(text)
        offsets.append(position)
        position += len(text)
    return {"tokens": tokens, "token_logprobs": [lp.logprob for lp in items],
            "top_logprobs": [{piece(t): v for t, v in lp.top} for lp in items], "text_offset": offsets}


class CompletionAnswer(Answer):
    object_name = "text_completion"
    chunk_name = "text_completion"
    prefix = "cmpl"

    async def choice(self, index: int, collected: Collected) -> dict[str, Any]:
        lp = None
        if self.logprobs:
            pieces = await self.service.token_pieces(self.turn.lease, collected.logprobs)
            lp = completion_logprobs(collected.logprobs, pieces)
        return {"index": index, "text": collected.result.text, "logprobs": lp,
                "finish_reason": finish_reason(collected.result)}

    def usage_chunk(self) -> bytes:
        return sse({"id": self.id, "object": self.chunk_name, "created": self.created, "model": self.model,
                    "choices": [], "usage": usage(self.results)})

    def _chunk(self, index: int, text: str, finish: str | None = None, lp: Any = None) -> dict[str, Any]:
        return self.head(choices=[{"index": index, "text": text, "logprobs": lp, "finish_reason": finish}])

    async def chunks(self, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
        n = len(self.turn.requests)
        texts = [SseTemplate(self._chunk(i, SseTemplate.hole())) for i in range(n)]
        offsets = [0] * n  # text_offset of each choice's next token

        def chunk(index: int, text: str, finish: str | None = None, lp: Any = None) -> bytes:
            if finish is None and lp is None:
                return texts[index].render(text)
            return sse(self._chunk(index, text, finish, lp))

        async for index, event in self.turn.events(firsts):
            if isinstance(event, Chunk):
                if event.text or event.logprobs:
                    lp = None
                    if self.logprobs and event.logprobs:
                        pieces = await self.service.token_pieces(self.turn.lease, event.logprobs)
                        lp = completion_logprobs(event.logprobs, pieces, offsets[index])
                        offsets[index] = lp["text_offset"][-1] + len(lp["tokens"][-1])
                    yield chunk(index, event.text, lp=lp)
                continue
            self.results.append(event)
            yield chunk(index, "", finish_reason(event))
