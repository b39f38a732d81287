"""A streamed Messages answer in Anthropic's event sequence.

``message_start``, ``ping``, then per content block ``content_block_start``,
``content_block_delta`` (``thinking_delta`` + ``signature_delta``, ``text_delta``,
``input_json_delta`` for a tool call's input), ``content_block_stop``; at the end
``message_delta`` (stop_reason, usage) and ``message_stop``. An error after the
first event is an ``error`` event in Anthropic's error shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ...errors import LlamarunError
from ...serving import Event
from ...types import Chunk, GenerationResult
from ..errors import error_body, status_of
from ..streaming import line_json
from .convert import tool_input_json
from .reply import Reply, stop_of, tool_use_block, usage_of

__all__ = ["message_events"]


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {line_json({'type': name, **data})}\n\n".encode()


class _Blocks:
    """The content blocks of the answer so far: which one is open, and its index."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.index = -1
        self.open: str | None = None

    def start(self, block: dict[str, Any]) -> list[bytes]:
        out = self.stop()
        self.index += 1
        self.open = block["type"]
        return [*out, event("content_block_start", {"index": self.index, "content_block": block})]

    def stop(self) -> list[bytes]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            out.append(self.delta({"type": "signature_delta", "signature": ""}))
        self.open = None
        return [*out, event("content_block_stop", {"index": self.index})]

    def delta(self, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": self.index, "delta": delta})

    def text(self, thinking: str, content: str) -> list[bytes]:
        out: list[bytes] = []
        if thinking:
            if self.open != "thinking":
                out += self.start(self.reply.thinking_block(""))
            if self.reply.show_thinking:
                out.append(self.delta({"type": "thinking_delta", "thinking": thinking}))
        if content:
            if self.open != "text":
                out += self.start({"type": "text", "text": ""})
            out.append(self.delta({"type": "text_delta", "text": content}))
        return out


async def _body(reply: Reply, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
    parser = reply.turn.plan.chat.stream_parser()
    blocks = _Blocks(reply)
    async for _, item in reply.turn.events(firsts):
        if isinstance(item, Chunk):
            for data in blocks.text(*_split(parser.feed(item.text))):
                yield data
            continue
        result: GenerationResult = item
        delta, output = parser.finish()
        for data in blocks.text(*_split(delta)):
            yield data
        if blocks.index < 0 and not output.tool_calls:
            for data in blocks.start({"type": "text", "text": ""}):
                yield data
        for call in output.tool_calls:
            for data in blocks.start(tool_use_block(call, with_input=False)):
                yield data
            yield blocks.delta({"type": "input_json_delta", "partial_json": tool_input_json(call.arguments)})
        for data in blocks.stop():
            yield data
        stop = await stop_of(reply.service, reply.turn, result, reply.body.stop_sequences or (),
                             bool(output.tool_calls))
        yield event("message_delta", {"delta": {"stop_reason": stop[0], "stop_sequence": stop[1]},
                                      "usage": usage_of(result)})  # cumulative: the prompt is known now


def _split(delta: Any) -> tuple[str, str]:
    return delta.thinking, delta.content


async def message_events(reply: Reply, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
    """The whole event stream of ``reply`` (``firsts``: the turn's first events, already awaited)."""
    prompt = next((e.prompt_tokens for e in firsts if isinstance(e, GenerationResult)), None)
    usage = usage_of(None, prompt_tokens=prompt or 0)
    usage["output_tokens"] = 0
    yield event("message_start", {"message": reply.head([], (None, None), usage)})
    yield event("ping", {})
    try:
        async for data in _body(reply, firsts):
            yield data
    except LlamarunError as exc:
        yield event("error", error_body("/v1/messages", status_of(exc), str(exc)))
        return
    yield event("message_stop", {})
