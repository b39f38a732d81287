"""Counters and latency samples kept by the runtime (read by /metrics and /health)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["MetricsSnapshot", "RuntimeMetrics"]

_SAMPLES = 2048


@dataclass(frozen=True)
class MetricsSnapshot:
    queue_depth: int
    running: int
    n_slots: int
    kv_cells_used: int
    kv_cells_total: int
    prompt_tokens: int
    generated_tokens: int
    prefix_tokens_reused: int
    preemptions: int
    aborted_decodes: int
    steps: int
    slot_moves: int
    spec_drafted: int
    spec_accepted: int
    outcomes: dict[str, int]
    ttft_s: tuple[float, ...]
    itl_s: tuple[float, ...]
    session_saved: int = 0
    session_saved_bytes: int = 0
    session_restored: int = 0
    session_restored_tokens: int = 0
    session_restore_failed: int = 0
    session_evicted: int = 0
    session_ram_bytes: int = 0
    session_disk_bytes: int = 0

    @property
    def kv_usage(self) -> float:
        return self.kv_cells_used / self.kv_cells_total if self.kv_cells_total else 0.0


@dataclass
class RuntimeMetrics:
    """Written by the engine thread only; snapshots may be taken from any thread."""

    n_slots: int = 0
    kv_cells_total: int = 0
    queue_depth: int = 0
    running: int = 0
    kv_cells_used: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefix_tokens_reused: int = 0
    preemptions: int = 0
    aborted_decodes: int = 0
    steps: int = 0
    slot_moves: int = 0
    spec_drafted: int = 0  # speculative decoding: tokens drafted, and of those kept
    spec_accepted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    ttft: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    itl: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    # saved KV states (runtime/kvtiers.py): counters, and the tiers' sizes now
    session_saved: int = 0
    session_saved_bytes: int = 0
    session_restored: int = 0
    session_restored_tokens: int = 0
    session_restore_failed: int = 0
    session_evicted: int = 0
    session_ram_bytes: int = 0
    session_disk_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_outcome(self, reason: str) -> None:
        with self._lock:
            self.outcomes[reason] += 1

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                queue_depth=self.queue_depth, running=self.running, n_slots=self.n_slots,
                kv_cells_used=self.kv_cells_used, kv_cells_total=self.kv_cells_total,
                prompt_tokens=self.prompt_tokens, generated_tokens=self.generated_tokens,
                prefix_tokens_reused=self.prefix_tokens_reused, preemptions=self.preemptions,
                aborted_decodes=self.aborted_decodes, steps=self.steps, slot_moves=self.slot_moves,
                spec_drafted=self.spec_drafted, spec_accepted=self.spec_accepted,
                outcomes=dict(self.outcomes), ttft_s=tuple(self.ttft), itl_s=tuple(self.itl),
                **{name: getattr(self, name) for name in _SESSION_FIELDS},
            )


_SESSION_FIELDS = ("session_saved", "session_saved_bytes", "session_restored", "session_restored_tokens",
                   "session_restore_failed", "session_evicted", "session_ram_bytes", "session_disk_bytes")
