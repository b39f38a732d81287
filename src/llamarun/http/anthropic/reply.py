"""One Messages answer as Anthropic's content blocks, stop reason and usage (whole and streamed share it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ...serving import Service, Turn, stops
from ...types import FinishReason, GenerationResult
from .schemas import MessagesRequest

__all__ = ["Reply", "stop_of", "tool_use_block", "usage_of"]


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
