"""One response being answered (:class:`ResponseDraft`): its identity, the request fields it echoes,
its output items (reasoning, message, function calls), status and usage, as OpenAI's Response object."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ...serving import Service, Turn
from ...types import GenerationResult
from .responses_schemas import ResponseCreateRequest

__all__ = ["ResponseDraft", "new_id", "reasoning_tokens"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def reasoning_tokens(service: Service, turn: Turn, result: GenerationResult, thinking: str) -> int:
    """How many of the output tokens are the reasoning (``thinking``: its text, as parsed)."""
    if not thinking or not result.token_ids:
        return 0
    ids, plan = result.token_ids, turn.plan.chat
    return await service.engine_call(turn.lease, lambda m: plan.reasoning_tokens(m.vocab.piece(t) for t in ids))


def _usage(result: GenerationResult, reasoning: int) -> dict[str, Any]:
    return {"input_tokens": result.prompt_tokens, "input_tokens_details": {"cached_tokens": result.cached_tokens},
            "output_tokens": result.completion_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": result.prompt_tokens + result.completion_tokens}


class ResponseDraft:
    """The Response object of one request, filled in as its turn runs."""

    def __init__(self, body: ResponseCreateRequest, *, parallel_tool_calls: bool) -> None:
        self.body = body
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.completed_at: int | None = None
        self.parallel_tool_calls = parallel_tool_calls
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.incomplete_details: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.turn: Turn | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """Stop generating (the answer or stream then ends as ``cancelled``)."""
        self.cancelled = True
        if self.turn is not None:
            for request in self.turn.requests:
                request.cancel()

    def object(self) -> dict[str, Any]:
        b = self.body
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": self.status,
            "completed_at": self.completed_at, "background": False, "error": self.error,
            "incomplete_details": self.incomplete_details, "instructions": b.instructions,
            "max_output_tokens": b.max_output_tokens, "model": b.model, "output": list(self.output),
            "parallel_tool_calls": self.parallel_tool_calls, "previous_response_id": b.previous_response_id,
            "reasoning": {"effort": (b.reasoning or {}).get("effort"), "summary": None}, "store": b.store,
            "temperature": b.temperature, "top_p": b.top_p, "text": b.text or {"format": {"type": "text"}},
            "tool_choice": b.tool_choice or "auto", "tools": b.tools or [], "truncation": b.truncation or "disabled",
            "usage": self.usage, "user": b.user, "metadata": b.metadata or {}, "service_tier": b.service_tier,
            "prompt_cache_key": b.prompt_cache_key, "safety_identifier": b.safety_identifier,
        }

    # -- output items ---------------------------------------------------------

    @staticmethod
    def reasoning_part(text: str) -> dict[str, Any]:
        return {"type": "reasoning_text", "text": text}

    @classmethod
    def reasoning_item(cls, text: str, *, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
        return {"type": "reasoning", "id": item_id or new_id("rs"), "status": status, "summary": [],
                "content": [cls.reasoning_part(text)] if text or status != "in_progress" else []}

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    @classmethod
    def message_item(cls, text: str | None, *, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
        return {"type": "message", "id": item_id or new_id("msg"), "status": status, "role": "assistant",
                "content": [] if text is None else [cls.text_part(text)]}

    @staticmethod
    def call_item(call: Any, *, arguments: str | None = None, status: str = "completed") -> dict[str, Any]:
        return {"type": "function_call", "id": new_id("fc"), "call_id": call.id, "name": call.name,
                "arguments": call.arguments_json if arguments is None else arguments, "status": status}

    def finish(self, result: GenerationResult, output: Any = None, *, reasoning_tokens: int = 0) -> None:
        """The turn ended: status and usage (and, when ``output`` is given, the items from it whole)."""
        if output is not None:
            if output.thinking:
                self.output.append(self.reasoning_item(output.thinking))
            if output.content or not output.tool_calls:
                self.output.append(self.message_item(output.content))
            self.output.extend(self.call_item(call) for call in output.tool_calls)
        self.usage = _usage(result, reasoning_tokens)
        self.completed_at = int(time.time())
        if result.finish_reason.value in ("length", "deadline"):
            self.status, self.incomplete_details = "incomplete", {"reason": "max_output_tokens"}
            for item in self.output:
                item["status"] = "incomplete"
        else:
            self.status = "completed"

    def fail(self, exc: BaseException, code: str) -> None:
        if self.cancelled:
            self.status = "cancelled"
            return
        self.status, self.error = "failed", {"code": code, "message": str(exc)}
