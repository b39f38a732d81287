"""The serving layer's events -> llamarun.v1 responses (chunks, the completion, log-probabilities)."""

from __future__ import annotations

from collections.abc import Sequence

from ..serving import Collected, Event, Pieces, Service, Turn
from ..types import Chunk, FinishReason, GenerationResult, TokenLogprob
from .v1 import llamarun_pb2 as pb

__all__ = ["Replies", "tool_calls"]

_FINISH = {FinishReason.STOP: pb.FINISH_REASON_STOP, FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
           FinishReason.DEADLINE: pb.FINISH_REASON_DEADLINE}


def tool_calls(calls: Sequence[object]) -> list[pb.ToolCall]:
    return [pb.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json)  # type: ignore[attr-defined]
            for c in calls]


def _logprobs(items: Sequence[TokenLogprob], pieces: Pieces) -> list[pb.TokenLogprob]:
    return [pb.TokenLogprob(token_id=lp.token, token=pieces(lp.token), logprob=lp.logprob,
                            top=[pb.TopLogprob(token_id=t, token=pieces(t), logprob=p) for t, p in lp.top])
            for lp in items]


class Replies:
    """Responses of one turn (the chat plan reads the answer of a chat input)."""

    def __init__(self, service: Service, turn: Turn, *, logprobs: bool) -> None:
        self.service, self.turn, self.logprobs = service, turn, logprobs

    async def _logprobs(self, items: Sequence[TokenLogprob]) -> list[pb.TokenLogprob]:
        if not self.logprobs or not items:
            return []
        return _logprobs(items, await self.service.token_pieces(self.turn.lease, items))

    def complete(self, result: GenerationResult) -> pb.Complete:
        t = result.timings
        done = pb.Complete(
            finish_reason=_FINISH.get(result.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
            usage=pb.Usage(prompt_tokens=result.prompt_tokens, cached_tokens=result.cached_tokens,
                           completion_tokens=len(result.token_ids)),
            timings=pb.Timings(load_s=self.turn.lease.load_s or t.load_s, prompt_s=t.prompt_s,
                               generate_s=t.generate_s, total_s=t.total_s, ttft_s=t.ttft_s or 0.0),
            truncated=result.truncated)
        chat = self.turn.plan.chat
        if chat is not None:
            parsed = chat.parse(result.text)
            done.content, done.thinking = parsed.content, parsed.thinking
            done.tool_calls.extend(tool_calls(parsed.tool_calls))
        else:
            done.content = result.text
        return done

    @staticmethod
    def worth_sending(event: Event) -> bool:
        """False for an empty chunk (the end of a stream: its Complete follows)."""
        return not isinstance(event, Chunk) or bool(event.text or event.token_ids or event.logprobs)

    async def response(self, request_id: str, event: Event) -> pb.GenerateResponse:
        if isinstance(event, Chunk):
            chunk = pb.Chunk(text=event.text, token_ids=event.token_ids,
                             logprobs=await self._logprobs(event.logprobs))
            return pb.GenerateResponse(request_id=request_id, chunk=chunk)
        return pb.GenerateResponse(request_id=request_id, complete=self.complete(event))

    async def whole(self, request_id: str, collected: Collected) -> pb.CompleteResponse:
        result = collected.result
        return pb.CompleteResponse(request_id=request_id, text=result.text, token_ids=result.token_ids,
                                   logprobs=await self._logprobs(collected.logprobs),
                                   complete=self.complete(result))
