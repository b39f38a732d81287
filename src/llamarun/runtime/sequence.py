"""Engine-side state of one request while the engine thread serves it."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..types import Chunk, FinishReason, GenerationResult, Timings, TokenLogprob
from .request import GenerationRequest, RequestStatus
from .stop import StopMatcher

if TYPE_CHECKING:
    from ..engine import Detokenizer, SamplerChain
    from .speculative import SpeculationState

__all__ = ["ActiveRequest", "Event", "Sink"]

Event = Chunk | GenerationResult | BaseException
Sink = Callable[[Event], None]

_FINISH = {
    FinishReason.STOP: RequestStatus.FINISHED_STOPPED,
    FinishReason.LENGTH: RequestStatus.FINISHED_LENGTH,
    FinishReason.CANCELLED: RequestStatus.FINISHED_CANCELLED,
    FinishReason.DEADLINE: RequestStatus.FINISHED_DEADLINE,
    FinishReason.ERROR: RequestStatus.FINISHED_ERROR,
}

_ids = itertools.count(1)


@dataclass
class _Clock:
    submitted: float
    started: float | None = None  # prefill began
    first_token: float | None = None
    last_token: float | None = None
    prefill_s: float = 0.0


class ActiveRequest:
    """One request inside the engine: its tokens, KV position, sampler and output.

    ``tokens`` is the prompt plus every generated token; ``n_past`` of them are
    in the KV cache.  While decoding, exactly the last token is not yet in the
    cache; a preempted request has ``n_past == 0`` and recomputes everything.
    """

    def __init__(self, spec: GenerationRequest, sink: Sink, *, submitted: float | None = None) -> None:
        self.id = next(_ids)
        self.spec = spec
        self.sink = sink
        self.status = RequestStatus.WAITING
        self.clock = _Clock(submitted if submitted is not None else time.monotonic())
        self.deadline = self.clock.submitted + spec.timeout if spec.timeout else math.inf
        self.cancelled = threading.Event()
        self.tokens: list[int] = []
        self.n_prompt = 0
        self.n_past = 0
        self.slot: int | None = None
        self.cached_tokens = 0
        self.truncated = False
        self.generated: list[int] = []
        self.text_parts: list[str] = []
        self.sampler: SamplerChain | None = None
        self.detok: Detokenizer | None = None
        self.stops = StopMatcher(spec.stop)
        self.max_new = spec.max_tokens
        self.speculation: SpeculationState | None = None  # set by the engine loop when it speculates
        self._every = spec.stream_interval
        self._held: list[Chunk] = []  # generated output not yet sent (stream_interval > 1)
        self._held_tokens = 0
        self._shown = False  # some text has been sent (stream_interval > 1 holds output only after that)

    # -- ordering in the waiting queue: priority first, then arrival ------------
    def sort_key(self) -> tuple[int, int]:
        return (-self.spec.priority, self.id)

    @property
    def remaining(self) -> int:
        """Tokens not yet in the KV cache (1 while decoding)."""
        return len(self.tokens) - self.n_past

    @property
    def decoding(self) -> bool:
        return self.remaining == 1 and bool(self.generated)

    def emit(self, text: str, token_ids: tuple[int, ...], logprobs: tuple[TokenLogprob, ...] = (), *,
             last: bool = False) -> None:
        """Send generated output, or hold it until ``stream_interval`` tokens are together (``last``:
        send everything held)."""
        if text:
            self.text_parts.append(text)
        if self._every == 1:
            if text or token_ids:
                self.sink(Chunk(text=text, token_ids=token_ids, logprobs=logprobs))
        else:
            self._group(Chunk(text=text, token_ids=token_ids, logprobs=logprobs), last)

    def _group(self, chunk: Chunk, last: bool) -> None:
        if not (chunk.text or chunk.token_ids):
            if last:
                self._flush()
            return
        if not self._shown:  # until the first text is out, send at once: that text is the time to first token
            self._shown = bool(chunk.text)
            self.sink(chunk)
            return
        self._held.append(chunk)
        self._held_tokens += len(chunk.token_ids)
        if last or self._held_tokens >= self._every:
            self._flush()

    def _flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held, self._held_tokens = [], 0
        self.sink(held[0] if len(held) == 1 else Chunk(
            text="".join(c.text for c in held), token_ids=tuple(t for c in held for t in c.token_ids),
            logprobs=tuple(lp for c in held for lp in c.logprobs)))

    def timings(self, now: float) -> Timings:
        c = self.clock
        started = c.started if c.started is not None else now
        first = c.first_token if c.first_token is not None else now
        return Timings(
            prompt_s=c.prefill_s or max(0.0, first - started),
            generate_s=max(0.0, now - first) if c.first_token is not None else 0.0,
            total_s=now - c.submitted,
            ttft_s=(c.first_token - c.submitted) if c.first_token is not None else None,
            prompt_tokens=self.n_prompt,
            cached_tokens=self.cached_tokens,
            generated_tokens=len(self.generated),
            drafted_tokens=self.speculation.drafted if self.speculation is not None else 0,
            accepted_tokens=self.speculation.accepted if self.speculation is not None else 0,
        )

    def finish(self, reason: FinishReason, now: float, error: BaseException | None = None) -> GenerationResult:
        """Close the request: flush held text, free its sampler, deliver the result."""
        self.status = _FINISH[reason]
        if error is None and self.detok is not None:
            tail = self.detok.flush()
            text, hit = self.stops.push(tail)
            self.emit(text + ("" if hit else self.stops.flush()), (), last=True)
        else:
            self._flush()  # what was generated before the error still goes out, then the error
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None
        timings = self.timings(now)
        result = GenerationResult(
            text="".join(self.text_parts), token_ids=tuple(self.generated), finish_reason=reason,
            timings=timings, prompt_tokens=self.n_prompt, cached_tokens=self.cached_tokens,
            truncated=self.truncated, error=str(error) if error is not None else None,
        )
        if error is not None:
            self.sink(error)
        else:
            self.sink(Chunk(text="", finish_reason=reason, timings=timings))
            self.sink(result)
        return result
