"""Which catalog model suits this machine best, and why.

Rule: among the catalog models whose memory estimate fits, take the largest one
that still runs at an interactive speed (on a GPU: that fits entirely on it; on
the CPU: an estimated >= ``MIN_TOKENS_PER_S`` generated tokens/s).  If no model
is fast enough, take the fastest that fits.  Models already in the store are
measured from their GGUF header; the others are estimated from the catalog's
size and parameter count.

It sits above both ``hardware`` (what fits) and ``store`` (what is stored, the catalog),
which must not import each other.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import LlamarunError
from .gguf import read_model_facts
from .hardware import HardwareProfile, MemoryEstimate, ResourceRequest, format_bytes, plan_resources

if TYPE_CHECKING:
    from .store.catalog import CatalogEntry

__all__ = ["Candidate", "Recommendation", "estimate_tokens_per_s", "recommend_model"]

logger = logging.getLogger(__name__)

MIN_TOKENS_PER_S = 10.0
# CPU generation is memory-bound: tokens/s ~ K * threads / weight GB.  K from the measured
# anchor: SmolLM2 Q4_1 (0.098 GB) generates ~148 tokens/s on 2 threads (llama-bench tg128).
_CPU_K = 148 * 0.098 / 2
_RECOMMEND_CTX = 4096
_GB = 1e9


@dataclass(frozen=True)
class Candidate:
    """One catalog model judged for this machine."""

    name: str
    parameters: str
    size: int
    memory: int  # estimated bytes at the recommendation context
    fits: bool
    tokens_per_s: float  # rough generation speed estimate (0 when unknown)
    measured: bool  # estimate from the GGUF header (True) or from the catalog (False)
    note: str


@dataclass(frozen=True)
class Recommendation:
    name: str | None
    reasons: tuple[str, ...]
    candidates: tuple[Candidate, ...]


def _parameter_count(label: str) -> float:
    """'135M' -> 1.35e8, '7B' -> 7e9, '' -> 0."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", label.upper())
    if not match:
        return 0.0
    return float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]


def estimate_tokens_per_s(weights_bytes: int, hardware: HardwareProfile, on_gpu: bool) -> float:
    """A rough single-stream generation speed; GPUs are assumed fast enough (returns inf)."""
    if on_gpu:
        return float("inf")
    return _CPU_K * hardware.cpu.recommended_threads / max(weights_bytes / _GB, 1e-3)


def _rough_memory(entry: CatalogEntry, n_ctx: int) -> int:
    """Weights + KV + compute for a model not in the store (deliberately on the high side)."""
    params = _parameter_count(entry.parameters) or entry.size * 2.0  # ~4 bits per weight
    kv_per_token = max(32 * 1024, params / 65536)  # GQA models: ~23 KiB (135M) .. ~128 KiB (8B)
    compute = 4 * 512 * 160_000  # logits of one ubatch over a large vocabulary
    return int(entry.size + kv_per_token * n_ctx + compute)


def _judge(name: str, entry: CatalogEntry, hardware: HardwareProfile, budget: int) -> Candidate:
    request = ResourceRequest(n_ctx=_RECOMMEND_CTX, n_slots=1)
    path = _stored_path(name)
    if path is not None:
        try:
            facts = read_model_facts(path)
            plan = plan_resources(facts, hardware, request)
            est: MemoryEstimate = plan.estimate
            on_gpu = plan.n_gpu_layers > facts.n_layer
            speed = estimate_tokens_per_s(facts.weights_bytes, hardware, on_gpu)
            return Candidate(name, entry.parameters, entry.size, est.total, plan.fits, speed, True,
                             f"{est.describe()}, GPU layers {plan.n_gpu_layers}")
        except LlamarunError as exc:
            logger.debug("cannot read %s from the store: %s", name, exc)
    memory = _rough_memory(entry, _RECOMMEND_CTX)
    gpu = hardware.gpu_memory_free
    on_gpu = bool(gpu) and memory <= gpu * 0.9
    fits = memory <= budget or on_gpu
    speed = estimate_tokens_per_s(entry.size, hardware, on_gpu)
    return Candidate(name, entry.parameters, entry.size, memory, fits, speed, False,
                     f"~{format_bytes(memory)} (estimated from the catalog; not downloaded)")


def _stored_path(name: str) -> str | None:
    try:
        from .store import ModelStore  # deferred

        return str(ModelStore().get(name).path)
    except (LlamarunError, OSError, ImportError) as exc:
        logger.debug("%s is not in the store: %s", name, exc)
        return None


def recommend_model(
    hardware: HardwareProfile, catalog: Mapping[str, CatalogEntry] | None = None
) -> Recommendation:
    """Pick the best catalog model for ``hardware`` and say why."""
    if catalog is None:
        from .store.catalog import load_catalog  # deferred

        catalog = load_catalog()
    budget = hardware.memory.budget
    judged = tuple(_judge(name, entry, hardware, budget) for name, entry in catalog.items())
    fitting = [c for c in judged if c.fits]
    if not fitting:
        smallest = min(judged, key=lambda c: c.memory, default=None)
        need = f"; the smallest needs {format_bytes(smallest.memory)}" if smallest else ""
        return Recommendation(None, (f"no catalog model fits {format_bytes(budget)} of usable memory{need}",),
                              judged)
    fast = [c for c in fitting if c.tokens_per_s >= MIN_TOKENS_PER_S]
    if fast:
        best = max(fast, key=lambda c: (_parameter_count(c.parameters) or c.size, c.tokens_per_s))
        why = f"the largest catalog model that fits and runs at >= {MIN_TOKENS_PER_S:.0f} tokens/s"
    else:
        best = max(fitting, key=lambda c: c.tokens_per_s)
        why = "no catalog model that fits reaches interactive speed; this is the fastest"
    gpu_free = hardware.gpu_memory_free
    if math.isinf(best.tokens_per_s):
        speed = "expected speed: fast (entirely on the GPU)"
    else:
        speed = f"expected speed ~{best.tokens_per_s:.0f} tokens/s on {hardware.cpu.recommended_threads} threads"
    reasons = [
        f"{best.name} ({best.parameters or format_bytes(best.size)}) at a {_RECOMMEND_CTX}-token context "
        f"needs {best.note}",
        f"fits: {format_bytes(best.memory)} of {format_bytes(budget)} usable memory"
        + (f" and {format_bytes(gpu_free)} free GPU memory" if gpu_free else ""),
        speed,
        why,
        *_passed_over(best, judged),
    ]
    if not best.measured:
        reasons.append(f"not in the store yet: `llamarun pull {best.name}` (the catalog's size is approximate; "
                       "the pull verifies the digest and size the source's manifest gives)")
    return Recommendation(best.name, tuple(reasons), judged)


def _passed_over(best: Candidate, judged: tuple[Candidate, ...]) -> list[str]:
    """Why the next larger catalog models were not chosen (at most two)."""
    size = _parameter_count(best.parameters) or best.size
    larger = sorted((c for c in judged if (_parameter_count(c.parameters) or c.size) > size),
                    key=lambda c: _parameter_count(c.parameters) or c.size)[:2]
    out = []
    for c in larger:
        why = (f"needs ~{format_bytes(c.memory)}, more than fits" if not c.fits
               else f"~{c.tokens_per_s:.0f} tokens/s, below {MIN_TOKENS_PER_S:.0f}")
        out.append(f"passed over {c.name} ({c.parameters}): {why}")
    return out
