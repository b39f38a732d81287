"""KV slots (llama.cpp sequence ids) and prefix reuse between requests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..engine import ModelInfo

__all__ = ["SequenceKV", "Slot", "SlotTable", "common_prefix", "copy_threshold"]


class SequenceKV(Protocol):
    """The KV operations the slot table needs; :class:`~llamarun.engine.Context` is one.

    Positions ``[p0, p1)``, -1 meaning an open end.  Only the engine loop's
    decode writes KV; the table only removes and copies it, so a fake that
    counts cells per sequence can stand in for llama.cpp in scheduler tests.
    """

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove positions of a sequence; False when the KV cannot cut there (then remove it all)."""
        ...

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Give ``dst`` the positions of ``src`` (shared cells in a unified pool, a whole stream otherwise)."""
        ...

    def seq_state_get(self, seq_id: int) -> bytes:
        """The sequence's KV as bytes (for the KV tiers, :mod:`llamarun.runtime.kvtiers`)."""
        ...

    def seq_state_set(self, seq_id: int, data: bytes) -> bool:
        """Replace the sequence's KV by bytes from :meth:`seq_state_get`; False (sequence empty) if refused."""
        ...

# Copying one slot's KV stream into another cost about as much as computing 6 prompt tokens in a
# batch per byte of stream per model parameter (2-core CPU, SmolLM2-135M, f16 KV: a 1024-cell
# stream of 24 MB cost 7 ms, a batched prompt token 6.5 ms); the stream moves through memory
# once, a token through every weight.
_COPY_TOKENS_PER_BYTE_PER_PARAM = 6.0
_KEEP_PER_STEP = 2  # idle caches moved aside per admission step, longest first


def copy_threshold(info: ModelInfo, cells_per_slot: int, *, unified: bool) -> int:
    """How many prompt tokens a prefix copy between slots must save to be worth it.

    In a unified KV pool a copy only shares cells, so any saving counts.  With one stream
    per slot llama.cpp copies the whole stream; the threshold is twice its estimated cost
    in prompt tokens (for SmolLM2-135M: 3 tokens at 1024 cells a slot, 9 at 4096).
    """
    if unified:
        return 1
    meta, arch = info.metadata, info.architecture
    fallback = info.n_embd // max(1, info.n_head)  # models may declare their own key/value widths
    k_dim = _int(meta.get(f"{arch}.attention.key_length"), fallback)
    v_dim = _int(meta.get(f"{arch}.attention.value_length"), k_dim)
    stream_bytes = cells_per_slot * info.n_layer * info.n_head_kv * (k_dim + v_dim) * 2  # f16
    return max(1, math.ceil(2 * _COPY_TOKENS_PER_BYTE_PER_PARAM * stream_bytes / max(1, info.n_params)))


def _int(value: object, default: int) -> int:
    try:
        return int(value) if value is not None else default  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


_PREFIX_BLOCK = 256  # tokens compared at a time by common_prefix


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    if type(a) is type(b):  # comparing slices runs in C: all of it, then whole blocks
        if a[:n] == b[:n]:
            return n  # the usual case: a cached conversation that the prompt continues
        while i + _PREFIX_BLOCK <= n and a[i:i + _PREFIX_BLOCK] == b[i:i + _PREFIX_BLOCK]:
            i += _PREFIX_BLOCK
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Slot:
    """One sequence id; ``cached`` lists the tokens whose KV it holds, in order."""

    seq_id: int
    cached: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: int = 0


class SlotTable:
    """Assigns sequence ids to requests and reuses cached prefixes.

    With a unified KV pool a new request takes the free slot whose cache
    shares the longest prefix with its prompt.  With one KV stream per slot it
    takes the lowest free slot instead: llama.cpp computes a batch in one pass
    only over consecutive sequence ids, so busy slots are kept packed (see
    :meth:`gap_move`).  Either way, when another slot (busy or not) shares a
    clearly longer prefix, that KV is copied into the chosen slot first: in a
    unified pool the copy shares cells; across streams llama.cpp copies the
    whole stream, and the tail after the prefix is then removed.
    """

    def __init__(self, kv: SequenceKV, n_slots: int, *, unified: bool, min_copy: int) -> None:
        self._kv = kv
        self.slots = [Slot(i) for i in range(n_slots)]
        self._unified = unified
        self._min_copy = min_copy
        self._tick = 0
        # called as (slot, tokens kept) just before an idle slot's cache is cut: the KV tiers save it there
        self.on_drop: Callable[[Slot, int], None] | None = None

    @property
    def kv(self) -> SequenceKV:
        return self._kv

    @property
    def min_copy(self) -> int:
        """Tokens a prefix copy (or a restore of a saved state) must save to be worth it."""
        return self._min_copy

    def free_count(self) -> int:
        return sum(not s.busy for s in self.slots)

    def cells_used(self) -> int:
        return sum(len(s.cached) for s in self.slots)

    def best_caches(self, prompts: Sequence[Sequence[int]]) -> list[tuple[Slot, int]]:
        """For each prompt, the slot holding its longest prefix and that length (see :meth:`acquire_all`)."""
        return [self._best_cache(p) for p in prompts]

    def acquire(self, prompt: Sequence[int]) -> tuple[Slot, int]:
        """Take a free slot for ``prompt``; returns it and how many tokens are reused."""
        return self.acquire_all([prompt])[0]

    def acquire_all(self, prompts: Sequence[Sequence[int]],
                    caches: Sequence[tuple[Slot, int]] | None = None) -> list[tuple[Slot, int]]:
        """Take free slots for prompts admitted together; ``(slot, reused)`` for each, in order.

        With one KV stream per slot they take the lowest free slots (in the order given, so
        the caller decides which prompt goes lower); in a unified pool, free slots that hold
        their prefixes or were used longest ago.  Either way a prompt whose longest cached
        prefix sits in one of those free slots takes that slot itself, and every copy from a
        cache runs before any slot is cut back, so no prompt loses a prefix another one in
        the same step is given.  ``caches`` is :meth:`best_caches` of ``prompts`` when the
        caller has it already.
        """
        free = [s for s in self.slots if not s.busy]
        if len(prompts) > len(free):
            raise RuntimeError("no free slot")  # the caller checks free_count() first
        if caches is None:
            caches = self.best_caches(prompts)
        pool = free if self._unified else free[:len(prompts)]
        claimed = self._claim(caches, pool, self._min_copy)
        rest = iter(sorted((s for s in pool if s not in claimed.values()), key=self._preference))
        plan: list[tuple[Slot, Slot | None, int]] = []  # (slot, donor to copy from or None, tokens kept)
        for i, prompt in enumerate(prompts):
            slot = claimed[i] if i in claimed else next(rest)
            donor, shared = caches[i]
            own = _prefix(slot, prompt)
            copy = donor is not slot and shared >= own + self._min_copy
            plan.append((slot, donor if copy else None, shared if copy else own))
        if not self._unified:
            top = max((s.seq_id for s in self.slots if s.busy or s in pool), default=-1)
            spare = [s for s in free[len(prompts):] if s.seq_id > top]  # where no gap move will copy to
            self._keep_idle_caches(plan, spare, {id(d) for d, _ in caches})
        for slot, donor, kept in plan:  # every copy before any cut: a donor may be another prompt's slot
            if donor is not None:
                self._copy(donor, slot, kept)
        for slot, donor, kept in plan:
            if donor is None:
                self._truncate(slot, kept)
            slot.busy = True
            self._tick += 1
            slot.last_used = self._tick
        return [(slot, len(slot.cached)) for slot, _, _ in plan]

    def _keep_idle_caches(self, plan: Sequence[tuple[Slot, Slot | None, int]], spare: Sequence[Slot],
                          donors: set[int]) -> None:
        """Per-slot streams: the lowest free slots are taken for packing, and their idle caches
        (a finished conversation waiting for its next turn) would be cut back.  Move the longest
        of them (``_KEEP_PER_STEP`` at most: each is a stream copy, and a burst of new prompts
        should not wait for many) to spare free slots holding less, an empty one first, unless
        another slot holds that cache already."""
        spare = sorted((s for s in spare if id(s) not in donors), key=lambda s: (len(s.cached), s.last_used))
        losing = sorted(((len(slot.cached) - (0 if donor is not None else kept), slot) for slot, donor, kept in plan),
                        key=lambda pair: -pair[0])
        for lost, slot in losing[:_KEEP_PER_STEP]:
            if not spare:
                return
            if lost < self._min_copy or len(spare[0].cached) >= len(slot.cached) or any(
                    o is not slot and common_prefix(o.cached, slot.cached) == len(slot.cached) for o in self.slots):
                continue
            self._copy(slot, spare.pop(0), len(slot.cached))

    def _best_cache(self, prompt: Sequence[int]) -> tuple[Slot, int]:
        """The slot holding the longest prefix of ``prompt`` (a free one on a tie) and its length."""
        best, best_key = self.slots[0], (-1, False)
        for slot in self.slots:  # the first of the best, as max() would take
            key = (_prefix(slot, prompt), not slot.busy)
            if key > best_key:
                best, best_key = slot, key
        return best, best_key[0]

    @staticmethod
    def _claim(caches: Sequence[tuple[Slot, int]], pool: Sequence[Slot], least: int) -> dict[int, Slot]:
        """Prompts whose longest prefix (``least`` tokens or more) sits in a slot of ``pool`` take
        that slot (the longest of them on a tie); shorter ones are not worth the slot order."""
        claimed: dict[int, Slot] = {}
        for slot in pool:
            claimants = [i for i, (donor, shared) in enumerate(caches) if donor is slot and shared >= max(1, least)]
            if claimants:
                claimed[max(claimants, key=lambda i: (caches[i][1], -i))] = slot
        return claimed

    def _preference(self, slot: Slot) -> int:
        """Which free slot a prompt without a claim takes first: the lowest id with per-slot
        streams (busy ids stay packed), the one used longest ago in a unified pool."""
        return slot.last_used if self._unified else slot.seq_id

    def gap_move(self) -> tuple[Slot, Slot] | None:
        """With one KV stream per slot: (highest busy slot, lowest free slot below it), if busy ids have a gap."""
        if self._unified:
            return None
        busy = [s for s in self.slots if s.busy]
        if not busy or busy[-1].seq_id - busy[0].seq_id + 1 == len(busy):
            return None
        target = next(s for s in self.slots if not s.busy)
        return (busy[-1], target) if target.seq_id < busy[-1].seq_id else None

    def move(self, src: Slot, dst: Slot) -> None:
        """Move a busy slot's KV into free ``dst``; ``src`` keeps its copy as an idle prefix cache."""
        self._copy(src, dst, len(src.cached))
        dst.busy, src.busy = True, False
        dst.last_used = src.last_used

    def _copy(self, src: Slot, dst: Slot, n: int) -> None:
        kv = self._kv
        if self.on_drop is not None and dst.cached:
            self.on_drop(dst, common_prefix(dst.cached, src.cached[:n]))
        kv.seq_rm(dst.seq_id, -1, -1)
        if self._unified:
            kv.seq_cp(src.seq_id, dst.seq_id, 0, n)
        else:
            kv.seq_cp(src.seq_id, dst.seq_id, -1, -1)  # across streams only whole copies are allowed
            kv.seq_rm(dst.seq_id, n, -1)
        dst.cached = list(src.cached[:n])

    def _truncate(self, slot: Slot, n: int) -> None:
        if len(slot.cached) > n:
            if self.on_drop is not None:
                self.on_drop(slot, n)
            if not self._kv.seq_rm(slot.seq_id, n, -1):
                self._kv.seq_rm(slot.seq_id, -1, -1)
                n = 0
            del slot.cached[n:]

    def commit(self, slot: Slot, tokens: Sequence[int]) -> None:
        """Record that ``tokens`` were appended to the slot's KV."""
        slot.cached.extend(tokens)

    def rollback(self, slot: Slot, n_past: int) -> None:
        """Drop everything after the first ``n_past`` tokens (after an aborted decode)."""
        self._kv.seq_rm(slot.seq_id, n_past, -1)
        del slot.cached[n_past:]

    def release(self, slot: Slot) -> None:
        """The request is done; its cache stays for prefix reuse."""
        slot.busy = False

    def clear(self, slot: Slot) -> None:
        if self.on_drop is not None and slot.cached:
            self.on_drop(slot, 0)
        self._kv.seq_rm(slot.seq_id, -1, -1)
        slot.cached.clear()

    def evict_idle(self) -> int:
        """Free the KV of every idle slot; returns how many cells that was."""
        freed = 0
        for slot in self.slots:
            if not slot.busy and slot.cached:
                freed += len(slot.cached)
                self.clear(slot)
        return freed


def _prefix(slot: Slot, prompt: Sequence[int]) -> int:
    """Tokens of ``prompt`` the slot's cache can give: the last prompt token is always computed
    (for its logits)."""
    return min(common_prefix(slot.cached, prompt), max(0, len(prompt) - 1))
