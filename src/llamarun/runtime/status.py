"""A read-only view of what one runtime is doing now: each slot, the queue, recent requests.

:meth:`Runtime.status <llamarun.runtime.runtime.Runtime.status>` builds it from any thread for
the dashboard. It reads the engine loop's lists and the requests' counters without a lock: each
read is of a whole Python object (a list copied at once, an int), so the view may be a step old
or mix two steps, never broken. Nothing here changes the loop's state.

Finished requests are recorded as :class:`FinishedRequest`: counts and times, never the output
text, and of the prompt nothing unless the runtime was asked to keep its first
:data:`PROMPT_CHARS` characters (``RuntimeConfig.log_prompts``, ``serve --log-prompts``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LlamarunError
from ..types import PromptSegments
from .request import RequestStatus

if TYPE_CHECKING:
    from .loop import EngineLoop
    from .sequence import ActiveRequest

__all__ = ["PROMPT_CHARS", "FinishedRequest", "RuntimeStatus", "SlotState", "finished_record", "prompt_prefix",
           "read_status"]

PROMPT_CHARS = 200  # characters of a prompt kept with log_prompts
_PROMPT_TOKENS = 256  # token ids detokenized for a token-id prompt (more than PROMPT_CHARS needs)

_OUTCOMES = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH: "length",
    RequestStatus.FINISHED_CANCELLED: "cancelled",
    RequestStatus.FINISHED_DEADLINE: "deadline",
    RequestStatus.FINISHED_ERROR: "error",
}


@dataclass(frozen=True)
class SlotState:
    """One slot (sequence id): idle, or the request it serves and how far that request is.

    ``phase`` is ``idle``, ``prefill`` (prompt tokens still to compute) or ``generating``;
    ``prompt_done`` counts prompt tokens in the KV cache (reused ones included), ``age_s`` is
    the time since the request was submitted, ``cached_cells`` the KV cells the slot holds.
    """

    slot: int
    phase: str
    cached_cells: int
    request_id: int | None = None
    prompt_tokens: int = 0
    prompt_done: int = 0
    generated: int = 0
    age_s: float = 0.0

    @property
    def busy(self) -> bool:
        return self.phase != "idle"


@dataclass(frozen=True)
class FinishedRequest:
    """A finished request: ``finished_at`` is wall-clock seconds, durations are seconds;
    ``prompt`` the first :data:`PROMPT_CHARS` characters of its prompt with ``log_prompts``, else None."""

    request_id: int
    finished_at: float
    outcome: str
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    total_s: float
    ttft_s: float | None
    generate_s: float
    prompt: str | None = None

    @property
    def itl_s(self) -> float | None:
        """Mean time between generated tokens (None with fewer than two)."""
        if self.generated_tokens < 2 or self.generate_s <= 0:
            return None
        return self.generate_s / (self.generated_tokens - 1)


@dataclass(frozen=True)
class RuntimeStatus:
    """Slots in id order, the ages of the waiting requests (oldest first), recent finished requests."""

    slots: tuple[SlotState, ...]
    waiting_ages_s: tuple[float, ...]
    recent: tuple[FinishedRequest, ...]

    @property
    def busy_slots(self) -> int:
        return sum(s.busy for s in self.slots)


def prompt_prefix(prompt: str | Sequence[int] | PromptSegments,
                  detokenize: Callable[[list[int]], str] | None = None, limit: int = PROMPT_CHARS) -> str:
    """The first ``limit`` characters of a prompt as the model reads it: the text, a chat template's
    whole output, or token ids detokenized (with ``detokenize``; without it, or for ids the model
    does not know, an empty string)."""
    if isinstance(prompt, PromptSegments):
        return prompt.text[:limit]
    if isinstance(prompt, str):
        return prompt[:limit]
    if detokenize is None:
        return ""
    try:
        return detokenize(list(prompt[:_PROMPT_TOKENS]))[:limit]
    except LlamarunError:
        return ""


def finished_record(req: ActiveRequest, now: float | None = None, *, log_prompt: bool = False,
                    detokenize: Callable[[list[int]], str] | None = None) -> FinishedRequest:
    """What the dashboard keeps of a finished request (called on the engine thread): with
    ``log_prompt`` the start of its prompt too (:func:`prompt_prefix`), else nothing of it."""
    now = time.monotonic() if now is None else now
    t = req.timings(now)
    return FinishedRequest(
        request_id=req.id, finished_at=time.time() - (time.monotonic() - now),
        outcome=_OUTCOMES.get(req.status, req.status.name.lower()), prompt_tokens=req.n_prompt,
        cached_tokens=req.cached_tokens, generated_tokens=len(req.generated), total_s=t.total_s,
        ttft_s=t.ttft_s, generate_s=t.generate_s,
        prompt=prompt_prefix(req.spec.prompt, detokenize) if log_prompt else None)


def _slot_state(seq_id: int, cells: int, req: ActiveRequest | None, now: float) -> SlotState:
    if req is None:
        return SlotState(slot=seq_id, phase="idle", cached_cells=cells)
    generated = len(req.generated)
    phase = "prefill" if req.remaining > 1 else "generating"  # a preempted request recomputes: prefill again
    return SlotState(slot=seq_id, phase=phase, cached_cells=cells, request_id=req.id,
                     prompt_tokens=req.n_prompt, prompt_done=min(req.n_past, req.n_prompt),
                     generated=generated, age_s=max(0.0, now - req.clock.submitted))


def read_status(loop: EngineLoop | None, recent: Iterable[FinishedRequest]) -> RuntimeStatus:
    """The status of ``loop`` (None: not running, no slots shown) with ``recent`` finished requests."""
    now = time.monotonic()
    finished = tuple(recent)
    if loop is None:
        return RuntimeStatus((), (), finished)
    scheduler = loop.scheduler  # the queues and the slot table are the scheduler's
    running: Sequence[ActiveRequest] = list(scheduler.running)
    waiting = [req for _, req in list(scheduler.waiting)]
    by_slot = {req.slot: req for req in running if req.slot is not None}
    slots = tuple(_slot_state(slot.seq_id, len(slot.cached), by_slot.get(slot.seq_id), now)
                  for slot in list(scheduler.slots.slots))
    ages = tuple(sorted((max(0.0, now - r.clock.submitted) for r in waiting), reverse=True))
    return RuntimeStatus(slots, ages, finished)
