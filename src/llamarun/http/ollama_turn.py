"""One Ollama generate/chat request in flight: submit it on a lease, then answer whole or as NDJSON."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ..errors import LlamarunError
from ..runtime import AsyncRequest, Lease
from ..types import Chunk, GenerationResult, PromptSegments, TokenLogprob
from .ollama_schemas import ChatRequest, GenerateRequest
from .ollama_stream import NDJSON, nanoseconds, now_rfc3339
from .params import ollama_load_options, ollama_request
from .service import Service, check_finished, request_timeout
from .streaming import WatchedStreamingResponse, ndjson

__all__ = ["Pieces", "Prepared", "Turn", "run_turn", "token_pieces"]


class Pieces:
    """Token id -> text for logprobs (reads the vocabulary on the engine thread once per response)."""

    def __init__(self, mapping: dict[int, str]) -> None:
        self.mapping = mapping

    def __call__(self, token: int) -> str:
        return self.mapping.get(token, "")


async def token_pieces(service: Service, lease: Lease, items: Sequence[TokenLogprob]) -> Pieces:
    """The text of every token named in ``items`` (chosen and top alternatives)."""
    ids = sorted({lp.token for lp in items} | {t for lp in items for t, _ in lp.top})
    if not ids:
        return Pieces({})
    mapping = await service.engine_call(
        lease, lambda m: {t: m.vocab.piece(t).decode("utf-8", "replace") for t in ids})
    return Pieces(mapping)


def _logprobs(items: Sequence[TokenLogprob], piece: Pieces) -> list[dict[str, Any]]:
    return [{"token": piece(lp.token), "logprob": lp.logprob,
             "top_logprobs": [{"token": piece(t), "logprob": v} for t, v in lp.top]} for lp in items]


# Ollama's done_reason is a free string in its clients; a deadline says so (the text is partial).
_DONE_REASONS = {"length": "length", "deadline": "deadline"}


def _final_fields(result: GenerationResult, lease: Lease, started: float) -> dict[str, Any]:
    t = result.timings
    return {
        "done": True,
        "done_reason": _DONE_REASONS.get(result.finish_reason.value, "stop"),
        "total_duration": nanoseconds(time.monotonic() - started),
        "load_duration": nanoseconds(lease.load_s),
        "prompt_eval_count": result.prompt_tokens,
        "prompt_eval_duration": nanoseconds(t.prompt_s),
        "eval_count": result.completion_tokens,
        "eval_duration": nanoseconds(t.generate_s),
    }


@dataclass(frozen=True)
class Prepared:
    """What a handler built on its lease: the prompt (text or token ids) and how to read the output."""

    prompt: str | PromptSegments | list[int]
    grammar: str | None
    plan: Any = None  # the chat plan (parses thinking and tool calls); None for raw prompts
    context: list[int] | None = None  # /api/generate's context: returned extended by the answer
    add_special: bool = False


async def run_turn(service: Service, request: Request, body: GenerateRequest | ChatRequest, *, chat: bool,
                   started: float, prepare: Callable[[Lease], Awaitable[Prepared]]) -> Response:
    """Acquire the model, let ``prepare`` build the prompt, submit it and answer: the lease is
    released on every failure before the turn owns it."""
    body_timeout = body.options.timeout if body.options and body.options.timeout is not None else body.timeout
    timeout = request_timeout(body_timeout, request.headers, service.config.request_timeout)
    lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options), body.keep_alive)
    try:
        prepared = await prepare(lease)
        top = max(1, body.top_logprobs) if body.logprobs else 0
        spec = ollama_request(prepared.prompt, body.options, grammar=prepared.grammar, timeout=timeout,
                              logprobs=top, truncate=bool(body.truncate), add_special=prepared.add_special,
                              parse_special=True, stream_interval=service.stream_interval(body.stream),
                              metadata=lease.info.metadata)
        areq = service.submit(lease, spec)
    except BaseException:
        lease.release()
        raise
    turn = Turn(service, lease, areq, chat=chat, plan=prepared.plan, model=body.model, started=started,
                timeout=timeout, context=prepared.context, logprobs=body.logprobs)
    return await turn.respond(request, body.stream)


class Turn:
    """One generate/chat request in flight: its lease, runtime request and response shaping."""

    def __init__(self, service: Service, lease: Lease, areq: AsyncRequest, *, chat: bool, plan: Any,
                 model: str, started: float, timeout: float | None, context: list[int] | None,
                 logprobs: bool) -> None:
        self.service, self.lease, self.areq = service, lease, areq
        self.chat, self.plan, self.model, self.started = chat, plan, model, started
        self.timeout, self.context, self.logprobs = timeout, context, logprobs

    def close(self) -> None:
        self.areq.cancel()
        self.lease.release()

    async def respond(self, request: Request, stream: bool) -> Response:
        """Answer with the whole result, or stream it once the first token (or error) is known."""
        if not stream:
            try:
                return JSONResponse(await self.whole(request.receive))
            finally:
                self.close()
        try:
            first = await self.service.first_event(request.receive, self.areq)
        except BaseException:
            self.close()
            raise
        return WatchedStreamingResponse(self.stream(first), media_type=NDJSON, on_close=[self.close])

    def _line(self, text: str, thinking: str = "", **extra: Any) -> dict[str, Any]:
        line: dict[str, Any] = {"model": self.model, "created_at": now_rfc3339()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            line["message"] = message
        else:
            line["response"] = text
            if thinking:
                line["thinking"] = thinking
        line["done"] = False
        line.update(extra)
        return line

    def _final(self, result: GenerationResult, **extra: Any) -> dict[str, Any]:
        line = self._line("", **extra)
        line.update(_final_fields(result, self.lease, self.started))
        if self.context is not None:
            line["context"] = [*self.context, *result.token_ids]
        return line

    async def _logprob_lines(self, items: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
        return _logprobs(items, await token_pieces(self.service, self.lease, items))

    async def whole(self, receive: Any) -> dict[str, Any]:
        (collected,) = await self.service.collect(receive, [self.areq])
        result = collected.result
        check_finished(result, self.timeout)
        extra: dict[str, Any] = {}
        if self.logprobs:
            extra["logprobs"] = await self._logprob_lines(collected.logprobs)
        if self.plan is None:
            return {**self._final(result, **extra), "response": result.text}
        output = self.plan.parse(result.text)
        line = self._final(result, **extra)
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": output.content}
            if output.thinking:
                message["thinking"] = output.thinking
            if output.tool_calls:
                message["tool_calls"] = [c.to_ollama() for c in output.tool_calls]
            line["message"] = message
        else:
            line["response"] = output.content
            if output.thinking:
                line["thinking"] = output.thinking
        return line

    async def stream(self, first: Chunk | GenerationResult) -> AsyncIterator[bytes]:
        parser = self.plan.stream_parser() if self.plan is not None else None
        event: Chunk | GenerationResult = first
        try:
            while True:
                if isinstance(event, GenerationResult):
                    check_finished(event, self.timeout)
                    yield await self._closing_lines(event, parser)
                    return
                if event.text or event.logprobs:
                    line = await self._chunk_line(event, parser)
                    if line is not None:
                        yield ndjson(line)
                event = await self.areq.next_event()
        except LlamarunError as exc:  # mid-stream failure: a final error line (status already sent)
            yield ndjson({"error": str(exc)})
        finally:
            self.areq.cancel()

    async def _chunk_line(self, chunk: Chunk, parser: Any) -> dict[str, Any] | None:
        thinking, text = "", chunk.text
        if parser is not None:
            delta = parser.feed(chunk.text)
            thinking, text = delta.thinking, delta.content
        extra: dict[str, Any] = {}
        if self.logprobs and chunk.logprobs:
            extra["logprobs"] = await self._logprob_lines(chunk.logprobs)
        if not text and not thinking and not extra:
            return None
        return self._line(text, thinking, **extra)

    async def _closing_lines(self, result: GenerationResult, parser: Any) -> bytes:
        out = b""
        if parser is not None:
            delta, output = parser.finish()
            if delta.content or delta.thinking:
                out += ndjson(self._line(delta.content, delta.thinking))
            if output.tool_calls and self.chat:
                line = self._line("")
                line["message"]["tool_calls"] = [c.to_ollama() for c in output.tool_calls]
                out += ndjson(line)
        return out + ndjson(self._final(result))
