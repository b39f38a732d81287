"""``/metrics``: Prometheus metrics of one app (its own registry, no process globals).

- HTTP: ``llamarun_http_requests_total{method,route,status}`` and
  ``llamarun_http_request_duration_seconds{method,route}`` (until the last byte
  of a streamed response), ``llamarun_http_requests_in_flight``; every label value
  comes from a fixed set (a method that is not a standard one is ``other``, a path
  is its route template or ``unmatched``), so made-up requests cannot grow the output;
- runtime, per loaded model (read at scrape time from each runtime's
  snapshot): queue depth, running requests, slots, KV cells, token counters,
  prefix reuse, preemptions, outcomes, time to first token and inter-token
  latency quantiles over the recent samples;
- manager: loaded models, loads, unloads, evictions, load failures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .guard import ASGIApp, Message, Receive, Scope, Send, ServerState

if TYPE_CHECKING:
    from ..runtime import ModelManager

__all__ = ["HttpMetrics", "MetricsMiddleware", "RuntimeCollector", "method_label", "route_label"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_QUANTILES = (0.5, 0.9, 0.95, 0.99)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(method: str) -> str:
    """The request method as a label value: a standard method, else ``other``."""
    return method if method in _METHODS else "other"


def route_label(scope: Scope) -> str:
    """The path template of the route that matched (``/api/blobs/{digest}``), else ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class HttpMetrics:
    """The registry of one app and its HTTP instruments."""

    def __init__(self, manager: ModelManager, state: ServerState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("llamarun_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("llamarun_http_request_duration_seconds",
                                 "Time from request to the last byte of the response",
                                 ["method", "route"], buckets=_BUCKETS, registry=self.registry)
        in_flight = Gauge("llamarun_http_requests_in_flight", "Requests being served", registry=self.registry)
        in_flight.set_function(lambda: state.inflight)
        self.registry.register(RuntimeCollector(manager))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class MetricsMiddleware:
    """Counts every request (including ones the guard refuses) by its route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.metrics.observe(method_label(scope["method"]), route_label(scope), status,
                                     time.perf_counter() - start)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the loop runs again: a client that saw the end finds it counted

        try:
            await self.app(scope, receive, send_status)
        finally:
            record()


def _quantiles(name: str, doc: str, samples: dict[str, tuple[float, ...]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["model", "quantile"])
    for model, values in samples.items():
        if values:
            array = np.asarray(values)
            for q in _QUANTILES:
                family.add_metric([model, str(q)], float(np.quantile(array, q)))
    return family


class RuntimeCollector(Collector):
    """Reads the manager's runtimes at scrape time."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snapshots = {name: runtime.snapshot() for name, runtime in self.manager.runtimes()}
        gauges: dict[str, tuple[str, Any]] = {
            "llamarun_queue_depth": ("Requests waiting for a slot", lambda s: s.queue_depth),
            "llamarun_requests_running": ("Requests holding a slot", lambda s: s.running),
            "llamarun_slots": ("Parallel sequences (slots)", lambda s: s.n_slots),
            "llamarun_kv_cells_used": ("KV cache cells in use", lambda s: s.kv_cells_used),
            "llamarun_kv_cells_total": ("KV cache cells", lambda s: s.kv_cells_total),
            "llamarun_kv_usage_ratio": ("Fraction of KV cache cells in use", lambda s: s.kv_usage),
            "llamarun_session_ram_bytes": ("Bytes of saved KV states in the RAM tier", lambda s: s.session_ram_bytes),
            "llamarun_session_disk_bytes": ("Bytes of saved KV states in the disk tier",
                                            lambda s: s.session_disk_bytes),
        }
        yield from _per_model(GaugeMetricFamily, gauges, snapshots)
        counters: dict[str, tuple[str, Any]] = {
            "llamarun_prompt_tokens": ("Prompt tokens received", lambda s: s.prompt_tokens),
            "llamarun_generated_tokens": ("Tokens generated", lambda s: s.generated_tokens),
            "llamarun_prefix_tokens_reused": ("Prompt tokens served from the prefix cache",
                                              lambda s: s.prefix_tokens_reused),
            "llamarun_preemptions": ("Requests preempted when the KV cache was full", lambda s: s.preemptions),
            "llamarun_aborted_decodes": ("Decodes interrupted to cancel a prefill", lambda s: s.aborted_decodes),
            "llamarun_engine_steps": ("Engine steps (one llama_decode each)", lambda s: s.steps),
            "llamarun_slot_moves": ("Requests whose KV moved down to keep busy slots consecutive",
                                    lambda s: s.slot_moves),
            "llamarun_session_saved": ("KV states saved to the tiers when their slot was taken",
                                       lambda s: s.session_saved),
            "llamarun_session_saved_bytes": ("Bytes of KV states saved to the tiers", lambda s: s.session_saved_bytes),
            "llamarun_session_restored": ("KV states restored from the tiers instead of computed",
                                          lambda s: s.session_restored),
            "llamarun_session_restored_tokens": ("Prompt tokens restored from the tiers",
                                                 lambda s: s.session_restored_tokens),
            "llamarun_session_restore_failed": ("Restores llama.cpp refused (computed instead)",
                                                lambda s: s.session_restore_failed),
            "llamarun_session_evicted": ("Saved KV states dropped by the tiers' limits", lambda s: s.session_evicted),
            "llamarun_speculative_drafted_tokens": ("Tokens drafted by speculative decoding",
                                                    lambda s: s.spec_drafted),
            "llamarun_speculative_accepted_tokens": ("Drafted tokens the model kept", lambda s: s.spec_accepted),
        }
        yield from _per_model(CounterMetricFamily, counters, snapshots)
        outcomes = CounterMetricFamily("llamarun_requests_finished", "Finished requests by outcome",
                                       labels=["model", "outcome"])
        for model, snap in snapshots.items():
            for outcome, count in snap.outcomes.items():
                outcomes.add_metric([model, outcome], float(count))
        yield outcomes
        yield _quantiles("llamarun_time_to_first_token_seconds", "Time to first token over recent requests",
                         {m: s.ttft_s for m, s in snapshots.items()})
        yield _quantiles("llamarun_inter_token_latency_seconds", "Time between tokens over recent steps",
                         {m: s.itl_s for m, s in snapshots.items()})
        yield from self._manager_metrics(len(snapshots))

    def _manager_metrics(self, loaded: int) -> Iterator[Metric]:
        yield GaugeMetricFamily("llamarun_models_loaded", "Models loaded", value=loaded)
        counters = dict(self.manager.counters)
        for key, doc in (("loads", "Model loads"), ("unloads", "Model unloads (keep_alive or request)"),
                         ("evictions", "Models unloaded to make room (LRU)"), ("load_failures", "Failed loads")):
            yield CounterMetricFamily(f"llamarun_model_{key}", doc, value=float(counters.get(key, 0)))


def _per_model(kind: Any, table: dict[str, tuple[str, Any]], snapshots: dict[str, Any]) -> Iterator[Metric]:
    """One family per ``name: (doc, read)`` of ``table``, with a sample per model read from its snapshot."""
    for name, (doc, read) in table.items():
        family = kind(name, doc, labels=["model"])
        for model, snap in snapshots.items():
            family.add_metric([model], float(read(snap)))
        yield family
