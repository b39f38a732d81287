"""The cluster's ``/metrics``: every replica's families with a ``replica`` label, and the gauges the
Kubernetes Gateway API inference extension scrapes (its model-server protocol's names)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["GATEWAY_GAUGES", "cluster_metrics"]

# (name, help, status key, scale) per gauge of the inference extension's model-server protocol
# (docs/proposals/003-model-server-protocol: TotalQueuedRequests, TotalRunningRequests,
# KVCacheUtilization), spelled the way vLLM spells them, with our prefix.
GATEWAY_GAUGES = (
    ("llamarun:num_requests_waiting", "Requests waiting for a slot (TotalQueuedRequests)", "waiting"),
    ("llamarun:num_requests_running", "Requests holding a slot (TotalRunningRequests)", "running"),
    ("llamarun:kv_cache_usage_perc", "Fraction of KV cache cells in use, 0-1 (KVCacheUtilization)", "kv_usage"),
)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return repr(float(value)) if value == value else "NaN"


def cluster_metrics(reports: Sequence[tuple[str, dict[str, Any], str]]) -> str:
    """Prometheus text of all ``(replica, status, metrics text)`` reports, merged by family."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for replica, _, text in reports:
        for family in text_string_to_metric_families(text):
            kind = "untyped" if family.type == "unknown" else family.type
            _, _, lines = families.setdefault(family.name, (family.documentation, kind, []))
            for sample in family.samples:
                labels = {"replica": replica, **sample.labels}
                lines.append(f"{sample.name}{_labels(labels)} {_value(sample.value)}")
    out: list[str] = []
    for name, (doc, kind, lines) in families.items():
        out += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", *lines]
    out += list(_gateway_lines(reports))
    return "\n".join(out) + "\n"


def _gateway_lines(reports: Iterable[tuple[str, dict[str, Any], str]]) -> Iterable[str]:
    reports = list(reports)
    for name, doc, key in GATEWAY_GAUGES:
        yield f"# HELP {name} {doc}"
        yield f"# TYPE {name} gauge"
        for replica, status, _ in reports:
            labels = {"replica": replica, "model_name": str(status.get("model", ""))}
            yield f"{name}{_labels(labels)} {_value(float(status.get(key, 0)))}"
