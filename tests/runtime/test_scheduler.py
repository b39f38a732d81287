"""The scheduler's policy with a fake KV and a fake executor: no model, no llama.cpp context.

The fake KV counts the positions each sequence holds after the scheduler's removes and copies and
the executor's writes, as llama.cpp's would; after every step it must agree with what the slot
table believes each slot caches, and every write must continue its sequence where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from llamarun.runtime import GenerationRequest, RuntimeMetrics
from llamarun.runtime.scheduler import Ending, Scheduler, StepPlan
from llamarun.runtime.sequence import ActiveRequest
from llamarun.types import FinishReason, GenerationResult


class FakeKV:
    """Positions held per sequence; ``ops`` logs the scheduler's calls in order."""

    def __init__(self, n_seq: int, *, unified: bool) -> None:
        self.held = [0] * n_seq
        self.unified = unified
        self.ops: list[tuple[int | str, ...]] = []

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        assert p1 == -1, "the scheduler only cuts a sequence's tail"
        self.ops.append(("rm", seq_id, p0, p1))
        self.held[seq_id] = 0 if p0 < 0 else min(self.held[seq_id], p0)
        return True

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.ops.append(("cp", src, dst, p0, p1))
        assert self.held[dst] == 0, "a copy goes into an emptied sequence"
        if self.unified:
            assert p0 == 0 and 0 <= p1 <= self.held[src]
            self.held[dst] = p1
        else:
            assert (p0, p1) == (-1, -1), "across KV streams only whole copies"
            self.held[dst] = self.held[src]

    def seq_state_get(self, seq_id: int) -> bytes:
        self.ops.append(("get", seq_id))
        return self.held[seq_id].to_bytes(4, "little") if self.held[seq_id] else b""

    def seq_state_set(self, seq_id: int, data: bytes) -> bool:
        """The state is the number of positions it holds (the executor restores it, never the scheduler)."""
        self.ops.append(("set", seq_id))
        self.held[seq_id] = int.from_bytes(data, "little")
        return True

    def write(self, seq_id: int, start: int, count: int) -> None:
        """What a decode does: append ``count`` positions from ``start``."""
        assert self.held[seq_id] == start, f"sequence {seq_id} holds {self.held[seq_id]}, the batch starts at {start}"
        self.held[seq_id] = start + count

    def used(self) -> int:
        return sum(self.held)


class FakeExecutor:
    """Drives a Scheduler as EngineLoop does; sampling gives token 1000 + (tokens generated so far)."""

    def __init__(self, n_slots: int = 4, *, budget: int = 16, n_ctx: int = 64, unified: bool = False,
                 capacity: int | None = None, min_copy: int = 1) -> None:
        self.metrics = RuntimeMetrics()
        self.kv = FakeKV(n_slots, unified=unified)
        self.capacity = capacity if capacity is not None else n_ctx * n_slots
        self.sched = Scheduler(self.kv, n_slots, budget=budget, n_ctx=n_ctx, unified=unified, min_copy=min_copy,
                               metrics=self.metrics)
        self.results: dict[int, GenerationResult] = {}
        self.plans: list[StepPlan] = []

    def add(self, prompt: Sequence[int], *, max_tokens: int = 4, priority: int = 0,
            timeout: float | None = None) -> ActiveRequest:
        spec = GenerationRequest(prompt=list(prompt), max_tokens=max_tokens, priority=priority, timeout=timeout)
        req = ActiveRequest(spec, self._sink)
        req.tokens, req.n_prompt = list(prompt), len(prompt)
        self.sched.add(req)
        return req

    def _sink(self, event: object) -> None:
        if isinstance(event, GenerationResult):
            self.results[len(self.results)] = event

    def step(self, *, now: float | None = None, between: Callable[[StepPlan], str | None] | None = None) -> StepPlan:
        """One step; ``between(plan)`` runs after the plan, before the results (return "abort" to abort)."""
        sched = self.sched
        now = time.monotonic() if now is None else now
        plan = sched.schedule(now)
        self.plans.append(plan)
        self._end(plan.ended)
        assert sum(w.count for w in plan.work) <= sched.budget
        assert [w.req.slot for w in plan.work] == sorted(w.req.slot for w in plan.work)  # slot order
        if plan.restores:
            from llamarun.runtime.statecache import perform_restores

            perform_restores(plan, self.kv, sched.states, sched.slots.slots)  # type: ignore[arg-type]
        aborted = between is not None and between(plan) == "abort"
        if plan.work and self.kv.used() + sum(w.count for w in plan.work) > self.capacity:
            self._end(sched.on_kv_full())
        elif plan.work:
            for w in plan.work:
                self.kv.write(w.req.slot, w.start, w.count)  # type: ignore[arg-type]
            if aborted:
                sched.rollback(plan)
            else:
                for w in sched.decoded(plan, now):
                    if sched.append_token(w.req, 1000 + len(w.req.generated)):
                        sched.finish(w.req)
                        self._end([Ending(w.req, FinishReason.LENGTH)])
        for slot in sched.slots.slots:
            assert self.kv.held[slot.seq_id] == len(slot.cached), f"slot {slot.seq_id}"
        return plan

    def _end(self, ended: list[Ending]) -> None:
        for ending in ended:
            ending.req.finish(ending.reason, time.monotonic())

    def run(self, limit: int = 500) -> None:
        for _ in range(limit):
            if not self.sched.has_work():
                return
            self.step()
        raise AssertionError("the requests did not finish")


def shares(plans: list[StepPlan], req: ActiveRequest) -> list[int]:
    """How many tokens ``req`` had in each step it took part in."""
    return [w.count for plan in plans for w in plan.work if w.req is req]


def generated(req: ActiveRequest, n: int) -> bool:
    return req.generated == list(range(1000, 1000 + n))


def test_token_budget_per_step_with_decoding_requests_served_first():
    ex = FakeExecutor(4, budget=8)
    decoding = [ex.add([10 + i, 11 + i], max_tokens=20) for i in range(3)]
    ex.step()
    long = ex.add(list(range(100, 130)), max_tokens=2)
    for _ in range(4):
        plan = ex.step()
        assert sum(w.count for w in plan.work) == 8
        assert {w.req.id: w.count for w in plan.work if w.req is not long} == {r.id: 1 for r in decoding}
    assert shares(ex.plans, long) == [5, 5, 5, 5]
    ex.run()
    assert all(r.status.finished and len(r.generated) == 20 for r in decoding)


def test_chunked_prefill_of_mixed_prompt_lengths():
    ex = FakeExecutor(4, budget=16)
    a, b, c = (ex.add(list(range(base, base + n)), max_tokens=8) for base, n in ((10, 5), (100, 23), (200, 40)))
    ex.run()
    assert [r.slot for r in (a, b, c)] == [None] * 3 and all(generated(r, 8) for r in (a, b, c))
    # priority ties go by arrival: a's whole prompt, then b's chunks, then c's; decoding tokens first
    assert shares(ex.plans, a)[:2] == [5, 1]
    assert shares(ex.plans, b)[:3] == [11, 12, 1]
    assert shares(ex.plans, c)[:5] == [3, 14, 14, 9, 1]
    for req in (a, b, c):  # logits only where the prompt ends, and for every token after it
        flags = [w.sample for plan in ex.plans for w in plan.work if w.req is req]
        chunks = sum(1 for plan in ex.plans for w in plan.work if w.req is req and w.start < req.n_prompt)
        assert flags == [False] * (chunks - 1) + [True] * (len(flags) - chunks + 1)


def test_prompts_admitted_together_take_slots_by_length_left_to_compute():
    ex = FakeExecutor(4, budget=64)
    reqs = [ex.add(list(range(base, base + n)), max_tokens=2) for base, n in ((10, 40), (100, 5), (200, 23))]
    ex.step()
    assert [r.slot for r in ex.plans[0].admitted] == [0, 1, 2]
    assert [ex.plans[0].admitted.index(r) for r in reqs] == [2, 0, 1]


def test_priority_orders_admission_and_the_budget():
    ex = FakeExecutor(1, budget=16)
    first = ex.add([1, 2, 3], max_tokens=3)
    ex.step()
    low, high, mid = ex.add([4, 5], priority=0), ex.add([6, 7], priority=5), ex.add([8, 9], priority=1)
    ex.run()
    admitted = [r for plan in ex.plans for r in plan.admitted]
    assert admitted == [first, high, mid, low]

    ex = FakeExecutor(2, budget=8)
    low, high = ex.add(list(range(10, 30)), priority=0), ex.add(list(range(40, 60)), priority=3)
    ex.step()
    assert [(w.req, w.count) for w in ex.plans[0].work] == [(high, 8)]
    ex.run()
    assert generated(low, 4) and generated(high, 4)


def test_a_full_unified_kv_preempts_the_least_important_request_which_resumes_and_finishes():
    ex = FakeExecutor(3, budget=32, n_ctx=64, unified=True, capacity=48)
    a, b, c = (ex.add(list(range(base, base + 10)), max_tokens=20, priority=p)
               for base, p in ((10, 2), (100, 1), (200, 0)))
    ex.run()
    assert ex.metrics.preemptions >= 2
    preempted = [r for plan in ex.plans for r in plan.preempted]
    assert preempted[:2] == [c, b]  # the least important first
    assert all(r.status == r.status.FINISHED_LENGTH and generated(r, 20) for r in (a, b, c))
    assert all(len(ex.results[i].token_ids) == 20 for i in range(3))
    resumed = [w for plan in ex.plans for w in plan.work if w.req is c and w.start == 0]
    assert len(resumed) >= 2 and resumed[-1].count > 10  # its prompt and what it generated, computed again


def test_a_request_alone_in_a_full_kv_ends_with_length():
    ex = FakeExecutor(2, budget=32, n_ctx=64, unified=True, capacity=30)
    req = ex.add(list(range(10, 30)), max_tokens=40)
    ex.run()
    assert req.status == req.status.FINISHED_LENGTH and len(req.generated) == 11  # 30 cells: 20 + 10 decoded
    assert ex.kv.held[0] == 30


def test_a_gap_between_busy_slots_is_closed_by_moving_the_last_one_down():
    ex = FakeExecutor(4, budget=32)
    a, short, c = ex.add([1, 2, 3, 4], max_tokens=30), ex.add([5, 6, 7, 8], max_tokens=2), ex.add(
        [9, 10, 11, 12], max_tokens=30)
    ex.step()
    assert (a.slot, short.slot, c.slot) == (0, 1, 2)
    ex.step()
    assert short.status.finished
    ex.kv.ops.clear()
    n = len(ex.sched.slots.slots[2].cached)
    plan = ex.step()
    assert plan.moves == [(2, 1)] and c.slot == 1 and ex.metrics.slot_moves == 1
    assert ex.kv.ops == [("rm", 1, -1, -1), ("cp", 2, 1, -1, -1), ("rm", 1, n, -1)]
    assert ex.kv.held[2] == n and not ex.sched.slots.slots[2].busy  # the copy left behind: an idle cache
    ex.run()
    assert generated(a, 30) and generated(c, 30)


def test_a_request_about_to_finish_is_not_moved():
    ex = FakeExecutor(4, budget=32)
    ex.add([1, 2, 3, 4], max_tokens=30), ex.add([5, 6, 7, 8], max_tokens=2)
    c = ex.add([9, 10, 11, 12], max_tokens=6)
    ex.run()
    assert not any(plan.moves for plan in ex.plans) and ex.metrics.slot_moves == 0
    assert generated(c, 6)


def test_unified_pool_request_goes_to_the_slot_sharing_the_longest_prefix():
    ex = FakeExecutor(3, budget=64, unified=True)
    convos = [list(range(base, base + n)) for base, n in ((10, 12), (100, 30), (200, 20))]
    first = [ex.add(p, max_tokens=2) for p in convos]
    ex.step()
    slots = [r.slot for r in first]
    assert sorted(slots) == [0, 1, 2]
    ex.run()  # each slot now caches its conversation and one generated token
    ex.kv.ops.clear()
    follow = ex.add(convos[1] + [1000, 7, 8], max_tokens=2)
    ex.step()
    assert follow.slot == slots[1] and follow.cached_tokens == 31
    assert not any(op[0] == "cp" for op in ex.kv.ops)  # its own slot: nothing copied
    other = ex.add(convos[2][:15] + [9], max_tokens=2)
    ex.step()
    assert other.slot == slots[2] and other.cached_tokens == 15


def test_per_slot_streams_take_the_lowest_slot_and_copy_the_longest_prefix_into_it():
    ex = FakeExecutor(4, budget=64, min_copy=3)
    convos = [list(range(10, 22)), list(range(100, 130))]
    for p in convos:
        ex.add(p, max_tokens=1)
    ex.run()
    ex.kv.ops.clear()
    follow = ex.add(convos[1] + [7], max_tokens=2)
    ex.step()
    assert follow.slot == 0 and follow.cached_tokens == 30
    assert ("cp", 1, 0, -1, -1) in ex.kv.ops


@pytest.mark.parametrize("aborted", [False, True])
def test_a_request_cancelled_within_a_step_is_dropped_and_its_slot_freed(aborted):
    ex = FakeExecutor(2, budget=16)
    gone, stays = ex.add(list(range(10, 20)), max_tokens=10), ex.add(list(range(30, 40)), max_tokens=10)
    ex.step()
    slot = gone.slot

    def cancel(plan: StepPlan) -> str | None:
        assert any(w.req is gone for w in plan.work)
        gone.cancelled.set()
        return "abort" if aborted else None

    ex.step(between=cancel)
    plan = ex.step()
    assert plan.ended == [Ending(gone, FinishReason.CANCELLED)]
    assert gone.slot is None and gone not in ex.sched.running and not ex.sched.slots.slots[slot].busy
    assert all(w.req is stays for w in plan.work)
    assert len(gone.generated) == (1 if aborted else 2) and gone.n_past == len(ex.sched.slots.slots[slot].cached)
    ex.run()
    assert generated(stays, 10) and ex.sched.slots.free_count() == 2


def test_a_waiting_request_past_its_deadline_ends_without_a_slot():
    ex = FakeExecutor(1, budget=16)
    busy = ex.add([1, 2, 3], max_tokens=5)
    late = ex.add([4, 5, 6], max_tokens=5, timeout=1.0)
    ex.step()
    plan = ex.step(now=time.monotonic() + 2.0)
    assert plan.ended == [Ending(late, FinishReason.DEADLINE)] and late.slot is None
    assert late.status == late.status.FINISHED_DEADLINE
    ex.run()
    assert generated(busy, 5)


def test_with_tiers_a_conversation_whose_slot_was_taken_is_saved_then_restored_by_the_executor():
    from llamarun.runtime.kvtiers import KVTiers

    ex = FakeExecutor(1, budget=64, n_ctx=128)
    states = ex.sched.use_tiers(KVTiers(1 << 20, 0, None, ex.metrics), min_tokens=4)
    first = ex.add(list(range(10, 40)), max_tokens=3)
    ex.run()
    history = first.tokens[:-1]  # the last sampled token was never decoded
    other = ex.add(list(range(200, 230)), max_tokens=2)  # takes the only slot: the first one is saved
    ex.run()
    assert [e.tokens for e in states.tiers.entries()] == [history]
    assert not any(op[0] == "set" for op in ex.kv.ops)  # the scheduler saved, but never loads, KV
    again = ex.add([*first.tokens, 50, 51], max_tokens=2)
    plan = ex.step()
    assert [(r.req, r.keep) for r in plan.restores] == [(again, len(history))]
    assert ("set", 0) in ex.kv.ops  # the executor loaded it
    assert again.cached_tokens == len(history) and shares(ex.plans, again)[0] == 3  # the last token and the 2 new
    ex.run()
    assert other.status.finished and generated(again, 2)
    assert ex.metrics.session_restored == 1 and ex.metrics.session_saved == 2
