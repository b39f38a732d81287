"""Where the scheduler meets the KV tiers: save a slot's conversation before its KV is cut, plan
restores for admitted prompts that continue a saved one, and (on the executor's side) perform them.

The scheduler stays free of llama.cpp: it reads a sequence's state through
:class:`~llamarun.runtime.slots.SequenceKV` (``seq_state_get``, as it removes and copies KV
through it), and a restore is a :class:`Restore` in its :class:`~llamarun.runtime.scheduler.StepPlan`
that the executor performs before the step's decode (:func:`perform_restores`), handing back
whether each worked (:meth:`StateCache.restored`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kvtiers import KVTiers, TierEntry
from .slots import SequenceKV, Slot

if TYPE_CHECKING:
    from .scheduler import StepPlan
    from .sequence import ActiveRequest

__all__ = ["Restore", "StateCache", "perform_restores"]

_MIN_TOKENS = 16  # a cache shorter than this is cheaper to compute again than to save and restore


@dataclass(slots=True)
class Restore:
    """Put ``entry``'s state into sequence ``seq_id`` and keep its first ``keep`` tokens."""

    req: ActiveRequest
    seq_id: int
    entry: TierEntry
    keep: int


class StateCache:
    """The scheduler's use of the tiers (engine thread only)."""

    def __init__(self, kv: SequenceKV, tiers: KVTiers, *, min_tokens: int = _MIN_TOKENS) -> None:
        self.kv = kv
        self.tiers = tiers
        self.min_tokens = max(1, min_tokens)

    def on_drop(self, slot: Slot, keep: int) -> None:
        """The slot table is about to cut ``slot``'s cache to ``keep`` tokens: save it first when
        that loses a conversation worth keeping (an idle one, not already saved)."""
        cached = slot.cached
        if slot.busy or len(cached) - keep < self.min_tokens:
            return
        held = self.tiers.holding(cached)
        if held is not None:
            self.tiers.touch(held)
            return
        state = self.kv.seq_state_get(slot.seq_id)
        if state:
            self.tiers.put(cached, state)

    def plan_restore(self, req: ActiveRequest, slot: Slot, reused: int, least: int) -> Restore | None:
        """A restore for ``req`` (just placed in ``slot`` with ``reused`` tokens cached) when a saved
        state gives it ``least`` tokens more; the slot's bookkeeping then says what it will hold."""
        entry, shared = self.tiers.best(req.tokens)
        shared = min(shared, len(req.tokens) - 1)  # the last prompt token is computed for its logits
        if entry is None or shared < max(self.min_tokens, reused + least):
            return None
        slot.cached = list(entry.tokens[:shared])
        return Restore(req, slot.seq_id, entry, shared)

    def restored(self, plan: StepPlan, restore: Restore, ok: bool, slot: Slot) -> None:
        """The executor's result: on failure the request computes from its first token, from the next step."""
        metrics = self.tiers.metrics
        if ok:
            metrics.session_restored += 1
            metrics.session_restored_tokens += restore.keep
            return
        metrics.session_restore_failed += 1
        req = restore.req
        slot.cached = []
        req.n_past = 0
        req.cached_tokens = 0
        plan.work[:] = [w for w in plan.work if w.req is not req]


def perform_restores(plan: StepPlan, kv: SequenceKV, cache: StateCache, slots: list[Slot]) -> None:
    """Executor side: load each planned state into its sequence, cut to what the prompt shares."""
    for restore in plan.restores:
        state = cache.tiers.read(restore.entry)
        ok = state is not None and kv.seq_state_set(restore.seq_id, state)
        if ok and restore.keep < len(restore.entry.tokens):
            ok = kv.seq_rm(restore.seq_id, restore.keep, -1)
        if not ok:
            kv.seq_rm(restore.seq_id, -1, -1)
        cache.restored(plan, restore, ok, slots[restore.seq_id])
