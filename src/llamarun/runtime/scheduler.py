"""The scheduling policy of one model: which tokens of which requests go into the next step.

In the manner of vLLM v1's scheduler (``vllm/v1/core/sched/scheduler.py``): :meth:`Scheduler.schedule`
returns a :class:`StepPlan` (requests ended before the step, slot moves, the batch's tokens in slot
order), and the executor (:class:`~llamarun.runtime.loop.EngineLoop`) hands the step's results back:
:meth:`~Scheduler.decoded` once the batch's KV is written, :meth:`~Scheduler.append_token` for each
sampled token, :meth:`~Scheduler.finish` for each request it ends, :meth:`~Scheduler.on_kv_full` and
:meth:`~Scheduler.rollback` when the decode failed.  The scheduler never calls llama.cpp: the few KV
operations of its :class:`~llamarun.runtime.slots.SlotTable` (remove and copy a sequence's positions)
go through :class:`~llamarun.runtime.slots.SequenceKV`, which a test fake implements.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..types import FinishReason
from .metrics import RuntimeMetrics
from .request import RequestStatus
from .sequence import ActiveRequest
from .slots import SequenceKV, SlotTable

if TYPE_CHECKING:
    from .kvtiers import KVTiers
    from .statecache import Restore, StateCache

__all__ = ["Ending", "Scheduler", "StepPlan", "Work"]

logger = logging.getLogger(__name__)

_MOVE_MIN_STEPS = 8  # a request moves to close a slot gap only with at least this many steps left


@dataclass(slots=True)
class Work:
    """One request's share of a step: ``count`` tokens of ``req.tokens`` from ``start``.

    ``sample`` says the share ends at the last known token, so its logits are sampled;
    ``row`` is the batch row of those logits, written by the executor as it builds the batch.
    ``draft``: tokens speculated after the share (their KV is computed too; see
    :mod:`.drafting`), set by the executor; :meth:`Scheduler.keep_drafts` takes the kept ones;
    ``match``: the length of the n-gram match an n-gram draft came from.
    """

    req: ActiveRequest
    start: int
    count: int
    sample: bool
    row: int = -1
    draft: Sequence[int] = ()
    match: int = 0


@dataclass(frozen=True, slots=True)
class Ending:
    """A request the scheduler ended; the executor delivers the end to its caller."""

    req: ActiveRequest
    reason: FinishReason


@dataclass(slots=True)
class StepPlan:
    """What :meth:`Scheduler.schedule` decided for one step.

    ``ended``: requests cancelled or past their deadline (already off the queues and out of
    their slots; the executor delivers their ends).  ``admitted``: requests that took a slot
    this step.  ``moves``: ``(from, to)`` sequence ids of gap moves made.  ``preempted``:
    requests sent back to the queue since the previous plan (on a full KV).  ``work``: the
    batch, in increasing slot order (the order llama.cpp computes in one pass).
    """

    work: list[Work] = field(default_factory=list)
    ended: list[Ending] = field(default_factory=list)
    admitted: list[ActiveRequest] = field(default_factory=list)
    moves: list[tuple[int, int]] = field(default_factory=list)
    preempted: list[ActiveRequest] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)  # saved KV states to load before the decode


class Scheduler:
    """Queues, slots and the token budget of one model's engine thread (not thread-safe).

    ``budget`` is the most tokens one step may take (the batch's capacity); ``n_ctx`` the
    most tokens one request may hold.  Requests come in through :meth:`add` already
    tokenized (``req.tokens`` is the prompt).
    """

    def __init__(self, kv: SequenceKV, n_slots: int, *, budget: int, n_ctx: int, unified: bool,
                 min_copy: int, metrics: RuntimeMetrics) -> None:
        self.slots = SlotTable(kv, n_slots, unified=unified, min_copy=min_copy)
        self.budget = budget
        self.n_ctx = n_ctx
        self.unified = unified
        self.metrics = metrics
        self.waiting: list[tuple[tuple[int, int], ActiveRequest]] = []  # a heap by priority, then arrival
        self.running: list[ActiveRequest] = []
        self._kv_pressure = False  # the KV was full: admit nothing more while others run
        self._preempted: list[ActiveRequest] = []
        self.states: StateCache | None = None  # see use_tiers()

    # -- requests in and out -----------------------------------------------------

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, req: ActiveRequest) -> None:
        """Queue a tokenized request."""
        heapq.heappush(self.waiting, (req.sort_key(), req))

    def requests(self) -> list[ActiveRequest]:
        """Every request held, running ones first."""
        return [*self.running, *(r for _, r in self.waiting)]

    def finish(self, req: ActiveRequest) -> None:
        """Take ``req`` off the queues and out of its slot (whose cache stays for prefix reuse)."""
        if req in self.running:
            self.running.remove(req)
        else:
            self.waiting = [(k, r) for k, r in self.waiting if r is not req]
            heapq.heapify(self.waiting)
        if req.slot is not None:
            slot = self.slots.slots[req.slot]
            if len(slot.cached) > req.n_past:  # partial state from an aborted decode
                self.slots.rollback(slot, req.n_past)
            self.slots.release(slot)
            req.slot = None
        self._kv_pressure = False

    # -- one step ----------------------------------------------------------------

    def schedule(self, now: float) -> StepPlan:
        """End cancelled and expired requests, admit waiting ones, close slot gaps, choose the batch."""
        plan = StepPlan()
        if self._preempted:
            plan.preempted, self._preempted = self._preempted, []
        self._expire(now, plan.ended)
        self._admit_waiting(now, plan.admitted)
        self._close_gaps(plan.moves)
        if self.states is not None and plan.admitted:
            self._plan_restores(plan, now)
        self._choose(plan.work)
        return plan

    # -- saved KV states (runtime/statecache.py) -------------------------------------

    def use_tiers(self, tiers: KVTiers, *, min_tokens: int = 16) -> StateCache:
        """Save idle caches the slot table cuts into ``tiers``, and restore from them on admission."""
        from .statecache import StateCache

        self.states = StateCache(self.slots.kv, tiers, min_tokens=min_tokens)
        self.slots.on_drop = self.states.on_drop
        return self.states

    def _plan_restores(self, plan: StepPlan, now: float) -> None:
        """Admitted requests that continue a saved state more than their slot does restore it (the
        executor loads it before this step's decode, see :func:`~llamarun.runtime.statecache.perform_restores`)."""
        assert self.states is not None
        for req in plan.admitted:
            slot = self.slots.slots[req.slot]  # type: ignore[index]
            restore = self.states.plan_restore(req, slot, req.n_past, self.slots.min_copy)
            if restore is None:
                continue
            gain = restore.keep - req.n_past
            req.n_past = restore.keep
            if req.clock.started == now:  # its first admission: what it reused is its cached_tokens
                req.cached_tokens = restore.keep
                self.metrics.prefix_tokens_reused += gain
            plan.restores.append(restore)

    def _expire(self, now: float, ended: list[Ending]) -> None:
        for req in self.requests():
            if req.cancelled.is_set():
                reason = FinishReason.CANCELLED
            elif now >= req.deadline:
                reason = FinishReason.DEADLINE
            else:
                continue
            self.finish(req)
            ended.append(Ending(req, reason))

    def _admit_waiting(self, now: float, admitted: list[ActiveRequest]) -> None:
        if not self.waiting:
            return  # most steps: nothing to place (taking no slots costs 30 us of slot bookkeeping)
        free = self.slots.free_count()
        while self.waiting and len(admitted) < free and not (self._kv_pressure and (self.running or admitted)):
            admitted.append(heapq.heappop(self.waiting)[1])
        if not admitted:
            return
        caches = self.slots.best_caches([r.tokens for r in admitted])
        if len(admitted) > 1 and not self.unified:
            # Shorter prompts take lower slots.  llama.cpp splits a batch over per-slot KV streams
            # into passes that each take the same number of tokens from a run of consecutive
            # sequence ids; with lengths rising along the slots that is one pass per distinct
            # length, where mixed lengths cost an extra pass over the model for every gap.
            order = sorted(range(len(admitted)), key=lambda i: len(admitted[i].tokens) - caches[i][1])
            admitted[:], caches = [admitted[i] for i in order], [caches[i] for i in order]
        placed = self.slots.acquire_all([r.tokens for r in admitted], caches)
        for req, (slot, reused) in zip(admitted, placed, strict=True):
            req.slot = slot.seq_id
            req.n_past = reused
            if req.clock.started is None:
                req.clock.started = now
                req.cached_tokens = reused
                self.metrics.prefix_tokens_reused += reused
            req.status = RequestStatus.RUNNING
            self.running.append(req)

    def _close_gaps(self, moves: list[tuple[int, int]]) -> None:
        """Keep busy slots consecutive (one pass per step with per-slot KV streams) by moving requests down.

        A move copies one KV stream (a few ms); a gap costs an extra pass over
        the model on every step, so only requests with steps left to run move.
        """
        while (move := self.slots.gap_move()) is not None:
            src, dst = move
            req = next(r for r in self.running if r.slot == src.seq_id)
            if req.max_new is not None and req.remaining - 1 + req.max_new - len(req.generated) < _MOVE_MIN_STEPS:
                return  # about to finish: its gap closes by itself
            self.slots.move(src, dst)
            req.slot = dst.seq_id
            moves.append((src.seq_id, dst.seq_id))
            self.metrics.slot_moves += 1

    def _choose(self, work: list[Work]) -> None:
        """This step's tokens by priority (every decoding request's next token first, then chunks
        of prompts: chunked prefill), written out in slot order.

        With one KV stream per slot llama.cpp computes a batch in one pass only
        when its sequences come in increasing, consecutive ids; any other order
        splits it into several passes over the whole model.
        """
        budget = self.budget
        ordered = sorted(self.running, key=ActiveRequest.sort_key)
        for req in ordered:
            if req.remaining == 1 and budget > 0:
                work.append(Work(req, req.n_past, 1, True))
                budget -= 1
        for req in ordered:
            remaining = req.remaining
            if remaining > 1 and budget > 0:
                count = min(remaining, budget)
                work.append(Work(req, req.n_past, count, count == remaining))
                budget -= count
        work.sort(key=_slot_of)

    # -- the step's results --------------------------------------------------------

    def decoded(self, plan: StepPlan, now: float) -> list[Work]:
        """The batch's KV is written (at ``now``): advance every request in it; returns the shares to
        sample (a request's first one ends its prefill time)."""
        slots = self.slots.slots
        sampled: list[Work] = []
        for w in plan.work:
            req = w.req
            start = w.start
            slots[req.slot].cached.extend(req.tokens[start:start + w.count])  # type: ignore[index]
            req.n_past = start + w.count
            if w.sample:
                sampled.append(w)
                clock = req.clock
                if not req.generated and clock.prefill_s == 0.0 and clock.started is not None:
                    clock.prefill_s = now - clock.started
        return sampled

    def append_token(self, req: ActiveRequest, token: int) -> bool:
        """Add a sampled token to ``req``; True when it has all it may generate (``max_tokens`` or ``n_ctx``)."""
        req.generated.append(token)
        req.tokens.append(token)
        return (req.max_new is not None and len(req.generated) >= req.max_new) or len(req.tokens) >= self.n_ctx

    def keep_drafts(self, req: ActiveRequest, kept: Sequence[int], drafted: int) -> None:
        """After a speculative share: the first ``kept`` of its ``drafted`` tokens stay in the KV
        (the executor appends them to the request next, then one sampled token), the rest are cut."""
        slot = self.slots.slots[req.slot]  # type: ignore[index]
        self.slots.commit(slot, kept)
        req.n_past += len(kept)
        if len(kept) < drafted:
            self.slots.rollback(slot, req.n_past)

    def rollback(self, plan: StepPlan) -> None:
        """Undo what an aborted or failed decode left in the KV."""
        for w in plan.work:
            if w.req.slot is not None:
                self.slots.rollback(self.slots.slots[w.req.slot], w.req.n_past)

    def on_kv_full(self) -> list[Ending]:
        """The decode found no room in the KV: free idle caches; if there are none, send the least
        important running request back to the queue (it resumes later by recomputing), or end the
        only one that runs (it has all the KV there is)."""
        self._kv_pressure = True
        if self.slots.evict_idle():
            return []
        if len(self.running) <= 1:
            ended = [Ending(req, FinishReason.LENGTH) for req in self.running]
            for ending in ended:
                self.finish(ending.req)
            return ended
        victim = max(self.running, key=ActiveRequest.sort_key)
        slot = self.slots.slots[victim.slot]  # type: ignore[index]
        self.slots.clear(slot)
        self.slots.release(slot)
        self.running.remove(victim)
        victim.slot = None
        victim.n_past = 0
        victim.status = RequestStatus.WAITING
        heapq.heappush(self.waiting, (victim.sort_key(), victim))
        self._preempted.append(victim)
        self.metrics.preemptions += 1
        logger.info("KV cache full: preempted request %d (%d tokens to recompute)", victim.id, len(victim.tokens))
        return []

    def update_gauges(self) -> None:
        m = self.metrics
        m.queue_depth = len(self.waiting)
        m.running = len(self.running)
        m.kv_cells_used = self.slots.cells_used()


def _slot_of(w: Work) -> int:
    return w.req.slot  # type: ignore[return-value]
