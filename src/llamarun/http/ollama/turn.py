"""Ollama's answer to a generate/chat turn (a serving :class:`~llamarun.serving.Turn`): whole or as NDJSON."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi.responses import JSONResponse, Response

from ...errors import LlamarunError
from ...serving import Event, Pieces, Service, Turn
from ...types import Chunk, GenerationResult, TokenLogprob
from ..streaming import WatchedStreamingResponse, ndjson
from .stream import NDJSON, nanoseconds, now_rfc3339

__all__ = ["OllamaAnswer"]


def _logprobs(items: Sequence[TokenLogprob], piece: Pieces) -> list[dict[str, Any]]:
    return [{"token": piece(lp.token), "logprob": lp.logprob,
             "top_logprobs": [{"token": piece(t), "logprob": v} for t, v in lp.top]} for lp in items]


# Ollama's done_reason is a free string in its clients; a deadline says so (the text is partial).
_DONE_REASONS = {"length": "length", "deadline": "deadline"}


class OllamaAnswer:
    """Ollama's shape of a turn's output: one JSON object, or NDJSON lines as tokens come."""

    def __init__(self, service: Service, turn: Turn, *, chat: bool, model: str, started: float,
                 logprobs: bool) -> None:
        self.service, self.turn, self.lease = service, turn, turn.lease
        self.chat, self.plan, self.model, self.started = chat, turn.plan.chat, model, started
        self.context, self.logprobs = turn.plan.context, logprobs

    async def respond(self, stream: bool) -> Response:
        """Answer with the whole result, or stream it once the first token (or error) is known."""
        if not stream:
            async with self.turn:
                return JSONResponse(await self.whole())
        first = await self.turn.first_events(check=False)
        return WatchedStreamingResponse(self.stream(first[0]), media_type=NDJSON, on_close=[self.turn.close])

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
        t = result.timings
        line.update({
            "done": True,
            "done_reason": _DONE_REASONS.get(result.finish_reason.value, "stop"),
            "total_duration": nanoseconds(time.monotonic() - self.started),
            "load_duration": nanoseconds(self.lease.load_s),
            "prompt_eval_count": result.prompt_tokens,
            "prompt_eval_duration": nanoseconds(t.prompt_s),
            "eval_count": result.completion_tokens,
            "eval_duration": nanoseconds(t.generate_s),
        })
        if t.drafted_tokens:  # speculative decoding (fields of ours; Ollama's clients ignore them)
            line.update({"draft_count": t.drafted_tokens, "draft_accepted_count": t.accepted_tokens})
        if self.context is not None:
            line["context"] = [*self.context, *result.token_ids]
        return line

    async def _logprob_lines(self, items: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
        return _logprobs(items, await self.service.token_pieces(self.lease, items))

    async def whole(self) -> dict[str, Any]:
        (collected,) = await self.turn.collect()
        result = collected.result
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

    async def stream(self, first: Event) -> AsyncIterator[bytes]:
        parser = self.plan.stream_parser() if self.plan is not None else None
        try:
            async for _, event in self.turn.events([first]):
                if isinstance(event, GenerationResult):  # a failed one raised in events()
                    yield await self._closing_lines(event, parser)
                elif event.text or event.logprobs:
                    line = await self._chunk_line(event, parser)
                    if line is not None:
                        yield ndjson(line)
        except LlamarunError as exc:  # mid-stream failure: a final error line (status already sent)
            yield ndjson({"error": str(exc)})

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
