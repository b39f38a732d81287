"""A streamed response: OpenAI's event sequence, each event named (``event:``) and numbered.

    response.created, response.in_progress,
    [response.output_item.added (reasoning), response.content_part.added (reasoning_text),
     response.reasoning_text.delta ..., response.reasoning_text.done, response.content_part.done,
     response.output_item.done]
    response.output_item.added (message), response.content_part.added, response.output_text.delta ...,
    response.output_text.done, response.content_part.done, response.output_item.done,
    [response.output_item.added (function_call), response.function_call_arguments.delta,
     response.function_call_arguments.done, response.output_item.done ...]
    response.completed | response.incomplete | (error, response.failed)

A reasoning item's text is a content part as a message's is (as in OpenAI's own Responses server for
gpt-oss, and the client's ``ResponseContentPartAddedEvent``, whose part may be ``reasoning_text``).
Items still open when the answer is cut short (``max_output_tokens``) are done as ``incomplete``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from ...errors import LlamarunError
from ...serving import Event, Service, Turn, codes_of
from ...types import Chunk, FinishReason
from ..streaming import line_json
from .responses_output import ResponseDraft, reasoning_tokens

__all__ = ["ResponseEvents"]


class ResponseEvents:
    """The events of one streamed response; ``done(draft)`` is awaited once it ended, before its last
    event (so that a client reading it finds the response stored)."""

    def __init__(self, draft: ResponseDraft, turn: Turn, done: Callable[[ResponseDraft], Awaitable[None]],
                 service: Service) -> None:
        self.draft, self.turn, self.done, self.service = draft, turn, done, service
        self.sequence = 0
        self.item: dict[str, Any] | None = None  # the item being streamed (reasoning or message)
        self.text = ""  # its text so far
        self.status = "completed"  # of the items done from now on ("incomplete" once the answer was cut)

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {line_json(data)}\n\n".encode()

    def _where(self) -> dict[str, Any]:
        assert self.item is not None
        return {"item_id": self.item["id"], "output_index": len(self.draft.output), "content_index": 0}

    def _open(self, kind: str) -> list[bytes]:
        events = self._close()
        draft = self.draft
        self.item = (draft.reasoning_item("", status="in_progress") if kind == "reasoning"
                     else draft.message_item(None, status="in_progress"))
        events.append(self.event("response.output_item.added", output_index=len(draft.output), item=self.item))
        part = draft.reasoning_part("") if kind == "reasoning" else draft.text_part("")
        events.append(self.event("response.content_part.added", **self._where(), part=part))
        return events

    def _close(self) -> list[bytes]:
        item, text, draft = self.item, self.text, self.draft
        if item is None:
            return []
        where = self._where()
        if item["type"] == "reasoning":
            done = draft.reasoning_item(text, item_id=item["id"], status=self.status)
            events = [self.event("response.reasoning_text.done", **where, text=text),
                      self.event("response.content_part.done", **where, part=draft.reasoning_part(text))]
        else:
            done = draft.message_item(text, item_id=item["id"], status=self.status)
            events = [self.event("response.output_text.done", **where, text=text, logprobs=[]),
                      self.event("response.content_part.done", **where, part=draft.text_part(text))]
        events.append(self.event("response.output_item.done", output_index=where["output_index"], item=done))
        draft.output.append(done)
        self.item, self.text = None, ""
        return events

    def _delta(self, kind: str, text: str) -> list[bytes]:
        if not text:
            return []
        events = self._open(kind) if self.item is None or self.item["type"] != kind else []
        self.text += text
        name = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        extra = {} if kind == "reasoning" else {"logprobs": []}
        events.append(self.event(name, **self._where(), delta=text, **extra))
        return events

    def _calls(self, calls: Sequence[Any]) -> list[bytes]:
        events: list[bytes] = []
        for call in calls:
            index, item = len(self.draft.output), self.draft.call_item(call, arguments="", status="in_progress")
            events.append(self.event("response.output_item.added", output_index=index, item=item))
            where = {"item_id": item["id"], "output_index": index}
            events.append(self.event("response.function_call_arguments.delta", **where, delta=call.arguments_json))
            events.append(self.event("response.function_call_arguments.done", **where, name=call.name,
                                     arguments=call.arguments_json))
            done = {**item, "arguments": call.arguments_json, "status": "completed"}
            events.append(self.event("response.output_item.done", output_index=index, item=done))
            self.draft.output.append(done)
        return events

    async def stream(self, firsts: Sequence[Event]) -> AsyncIterator[bytes]:
        draft = self.draft
        yield self.event("response.created", response=draft.object())
        yield self.event("response.in_progress", response=draft.object())
        parser = self.turn.plan.chat.stream_parser()
        try:
            async for _, event in self.turn.events(firsts):
                if isinstance(event, Chunk):
                    if event.text:
                        delta = parser.feed(event.text)
                        for data in self._delta("reasoning", delta.thinking) + self._delta("message", delta.content):
                            yield data
                    continue
                if event.finish_reason in (FinishReason.LENGTH, FinishReason.DEADLINE):
                    self.status = "incomplete"  # as draft.finish marks the items of a whole answer
                delta, output = parser.finish()
                for data in self._delta("reasoning", delta.thinking) + self._delta("message", delta.content):
                    yield data
                streaming_message = self.item is not None and self.item["type"] == "message"
                if not (output.tool_calls or streaming_message or any(i["type"] == "message" for i in draft.output)):
                    for data in self._open("message"):  # an answer without text is still a message
                        yield data
                for data in self._close() + self._calls(output.tool_calls):
                    yield data
                draft.finish(event, reasoning_tokens=await reasoning_tokens(self.service, self.turn, event,
                                                                            output.thinking))
        except LlamarunError as exc:
            codes = codes_of(exc)
            draft.fail(exc, codes.bridge)
            await self.done(draft)
            if draft.status == "failed":
                yield self.event("error", code=codes.bridge, message=str(exc), param=getattr(exc, "field", None))
            yield self.event("response.failed", response=draft.object())
            return
        await self.done(draft)
        name = "response.incomplete" if draft.status == "incomplete" else "response.completed"
        yield self.event(name, response=draft.object())
