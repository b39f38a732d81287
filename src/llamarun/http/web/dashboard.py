"""What the live dashboard shows, built from the same snapshots ``/metrics`` reads.

:class:`DashboardFeed` (one per app) turns the manager's models, each runtime's metrics snapshot
and status (:mod:`llamarun.runtime.status`) and the HTTP counters into one JSON-ready dict. Rates
(tokens per second in and out) are the change of the token counters between two views; the
history of rates and queue depth covers the last ``history_s`` seconds of views (kept while a
dashboard is open). Latency quantiles are computed as ``/metrics`` computes them, over the same
samples, so the numbers agree. No output text is ever part of a view, and no prompt text unless
the server keeps it (``serve --log-prompts``): then each recent request carries ``prompt``, the
first characters of its prompt, which the page shows as text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ...runtime import FinishedRequest, MetricsSnapshot, ModelManager, ModelStatus, RuntimeStatus
    from ..guard import ServerState
    from ..metrics import HttpMetrics

__all__ = ["DashboardFeed"]

_QUANTILES = (0.5, 0.9, 0.99)
_RECENT_ROWS = 50
_CHART_SECONDS = 300.0
_MIN_RATE_GAP = 0.5  # seconds: views closer together reuse the last rates


@dataclass
class _Counts:
    at: float
    prompt: int
    generated: int
    rate_in: float = 0.0
    rate_out: float = 0.0


def _quantiles(values: tuple[float, ...]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values)
    return {str(q): float(np.quantile(array, q)) for q in _QUANTILES}


def _slot(s: Any) -> dict[str, Any]:
    return {"slot": s.slot, "phase": s.phase, "cached_cells": s.cached_cells, "request_id": s.request_id,
            "prompt_tokens": s.prompt_tokens, "prompt_done": s.prompt_done, "generated": s.generated,
            "age_s": round(s.age_s, 3)}


def _finished(model: str, r: FinishedRequest) -> dict[str, Any]:
    row = {"model": model, "id": r.request_id, "finished_at": r.finished_at, "outcome": r.outcome,
           "prompt_tokens": r.prompt_tokens, "cached_tokens": r.cached_tokens,
           "generated_tokens": r.generated_tokens, "total_s": r.total_s, "ttft_s": r.ttft_s, "itl_s": r.itl_s}
    if r.prompt is not None:  # only with log_prompts
        row["prompt"] = r.prompt
    return row


class DashboardFeed:
    """Views of one app's runtime for ``/web/dashboard`` (thread-safe; call from a worker thread)."""

    def __init__(self, manager: ModelManager, metrics: HttpMetrics, state: ServerState, *,
                 history_s: float = _CHART_SECONDS) -> None:
        self.manager = manager
        self.metrics = metrics
        self.state = state
        self._lock = threading.Lock()
        self._counts: dict[str, _Counts] = {}
        self._history: deque[dict[str, float]] = deque()
        self._history_s = history_s
        self._started = time.time()

    def view(self) -> dict[str, Any]:
        now = time.monotonic()
        statuses = {s.name: s for s in self.manager.status()}
        models, recent = [], []
        for name, runtime in self.manager.runtimes():
            snap, status = runtime.snapshot(), runtime.status()
            rate_in, rate_out = self._rates(name, snap, now)
            models.append(self._model(name, statuses.pop(name, None), snap, status, rate_in, rate_out))
            recent += [_finished(name, r) for r in status.recent]
        models += [self._loading(s) for s in statuses.values()]  # loading: no runtime yet
        recent.sort(key=lambda r: r["finished_at"], reverse=True)
        totals = self._totals(models)
        self._remember(totals)
        wall = time.time()
        return {
            "time": wall, "uptime_s": wall - self._started, "models": models, "totals": totals,
            "http": self._http(), "history": list(self._history), "recent": recent[:_RECENT_ROWS],
            "latency_points": [{"t": r["finished_at"], "ttft_s": r["ttft_s"], "itl_s": r["itl_s"]}
                               for r in recent if wall - r["finished_at"] <= self._history_s],
            "process_rss_bytes": _rss(),
        }

    def _rates(self, name: str, snap: MetricsSnapshot, now: float) -> tuple[float, float]:
        with self._lock:
            last = self._counts.get(name)
            if last is None or snap.prompt_tokens < last.prompt or snap.generated_tokens < last.generated:
                self._counts[name] = _Counts(now, snap.prompt_tokens, snap.generated_tokens)  # new or reloaded
                return 0.0, 0.0
            gap = now - last.at
            if gap < _MIN_RATE_GAP:
                return last.rate_in, last.rate_out
            rate_in = (snap.prompt_tokens - last.prompt) / gap
            rate_out = (snap.generated_tokens - last.generated) / gap
            self._counts[name] = _Counts(now, snap.prompt_tokens, snap.generated_tokens, rate_in, rate_out)
            return rate_in, rate_out

    @staticmethod
    def _model(name: str, st: ModelStatus | None, snap: MetricsSnapshot, status: RuntimeStatus,
               rate_in: float, rate_out: float) -> dict[str, Any]:
        hit = snap.prefix_tokens_reused / snap.prompt_tokens if snap.prompt_tokens else 0.0
        return {
            "name": name, "state": st.state if st else "ready", "size_bytes": st.size_bytes if st else 0,
            "n_ctx": st.config.n_ctx if st else 0, "in_use": st.in_use if st else 0,
            "expires_at": st.expires_at if st else None, "loaded_at": st.loaded_at if st else None,
            "n_slots": snap.n_slots, "busy_slots": status.busy_slots, "running": snap.running,
            "queue_depth": snap.queue_depth, "waiting_ages_s": [round(a, 3) for a in status.waiting_ages_s],
            "slots": [_slot(s) for s in status.slots],
            "kv_cells_used": snap.kv_cells_used, "kv_cells_total": snap.kv_cells_total, "kv_usage": snap.kv_usage,
            "prompt_tokens": snap.prompt_tokens, "generated_tokens": snap.generated_tokens,
            "prefix_tokens_reused": snap.prefix_tokens_reused, "prefix_hit_rate": hit,
            "preemptions": snap.preemptions, "outcomes": dict(snap.outcomes),
            "ttft_s": _quantiles(snap.ttft_s), "itl_s": _quantiles(snap.itl_s),
            "tokens_per_s_in": rate_in, "tokens_per_s_out": rate_out,
        }

    @staticmethod
    def _loading(st: ModelStatus) -> dict[str, Any]:
        return {"name": st.name, "state": st.state, "size_bytes": st.size_bytes, "n_ctx": st.config.n_ctx,
                "n_slots": st.config.n_slots, "in_use": st.in_use, "slots": [], "busy_slots": 0, "running": 0,
                "queue_depth": 0, "outcomes": {}, "tokens_per_s_in": 0.0, "tokens_per_s_out": 0.0}

    @staticmethod
    def _totals(models: list[dict[str, Any]]) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for m in models:
            for key, count in m["outcomes"].items():
                outcomes[key] = outcomes.get(key, 0) + count
        return {
            "models_loaded": sum(m["state"] == "ready" for m in models),
            "size_bytes": sum(m["size_bytes"] for m in models),
            "slots": sum(m["n_slots"] for m in models), "busy_slots": sum(m["busy_slots"] for m in models),
            "queue_depth": sum(m["queue_depth"] for m in models), "running": sum(m["running"] for m in models),
            "tokens_per_s_in": sum(m["tokens_per_s_in"] for m in models),
            "tokens_per_s_out": sum(m["tokens_per_s_out"] for m in models), "outcomes": outcomes,
        }

    def _remember(self, totals: dict[str, Any]) -> None:
        wall = time.time()
        point = {"t": wall, "in": totals["tokens_per_s_in"], "out": totals["tokens_per_s_out"],
                 "queue": totals["queue_depth"], "busy": totals["busy_slots"]}
        with self._lock:
            if self._history and wall - self._history[-1]["t"] < _MIN_RATE_GAP:
                return
            self._history.append(point)
            while self._history and wall - self._history[0]["t"] > self._history_s:
                self._history.popleft()

    def _http(self) -> dict[str, Any]:
        """HTTP answers by status class, and 503s (busy, draining) apart; requests in flight."""
        by_status: dict[str, int] = {}
        for family in self.metrics.requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    code = sample.labels["status"]
                    by_status[code] = by_status.get(code, 0) + int(sample.value)
        classes = {"2xx": 0, "4xx": 0, "5xx": 0}
        for code, count in by_status.items():
            key = f"{code[0]}xx"
            if key in classes:
                classes[key] += count
        return {"by_class": classes, "overloaded_503": by_status.get("503", 0),
                "in_flight": max(0, self.state.inflight - 1)}  # not the dashboard's own stream


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)
