"""Pick threads, GPU layers, context and parallel slots for a model on this machine.

:func:`plan_resources` fills every automatic (0 / -1) value of a
:class:`ResourceRequest` from the hardware profile and the model's memory
estimate, shrinking automatic context and slot counts until the model fits, and
records why in ``reasons``.  :func:`check_fits` refuses a plan that does not fit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..config.names import SPELLINGS
from ..errors import InsufficientMemoryError, InvalidParameterError
from ..types import check_kv_cache_types
from .estimate import MemoryEstimate, estimate_memory, format_bytes
from ..gguf import ModelFacts
from .profile import HardwareProfile

if TYPE_CHECKING:
    from ..config import Settings
    from ..types import ContextOptions

__all__ = ["ADVICE_NAMES", "ResourcePlan", "ResourceRequest", "check_fits", "plan_resources"]

logger = logging.getLogger(__name__)

AUTO_CTX = 4096  # per sequence, like Ollama's default num_ctx (capped by the training context)
AUTO_PARALLEL_CPU = 4  # llama-server's default slot count
AUTO_PARALLEL_GPU = 8
MIN_AUTO_CTX = 512
_GIB = 1 << 30


@dataclass(frozen=True)
class ResourceRequest:
    """What the caller asked for; 0 (or -1 for ``n_gpu_layers``) means "choose for me"."""

    n_ctx: int = 0  # tokens one sequence may hold
    n_slots: int = 0  # sequences decoded together
    n_threads: int = 0
    n_gpu_layers: int = -1
    n_batch: int = 512
    n_ubatch: int = 512
    flash_attn: bool | None = None
    cache_type_k: str = "f16"  # KV-cache element types (llamarun.types.KV_CACHE_TYPES)
    cache_type_v: str = "f16"
    memory_budget: int = 0  # bytes of RAM the model may use; 0 = what is available now
    memory_in_use: int = 0  # bytes of an explicit budget already taken by other loaded models

    def __post_init__(self) -> None:
        for name in ("n_ctx", "n_slots", "n_threads", "memory_budget", "memory_in_use"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)}", field=name)
        if self.n_gpu_layers < -1:
            raise InvalidParameterError(f"n_gpu_layers must be >= -1, got {self.n_gpu_layers}", field="n_gpu_layers")
        for name in ("n_batch", "n_ubatch"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"{name} must be >= 1, got {getattr(self, name)}", field=name)
        check_kv_cache_types(self.cache_type_k, self.cache_type_v, self.flash_attn,
                             names=("cache_type_k", "cache_type_v", "flash_attn"))

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> ResourceRequest:
        """The request the settings describe, with ``changes`` (e.g. a request's num_ctx) applied."""
        from ..config.names import settings_values

        return cls(**{**settings_values(settings, (f.name for f in fields(cls))), **changes})


@dataclass(frozen=True)
class ResourcePlan:
    """Concrete sizes for loading a model, the memory they need, and why they were chosen."""

    model: str
    n_ctx: int  # tokens one sequence may hold (after llama.cpp's padding)
    n_slots: int
    n_ctx_total: int  # KV cells of the whole context: pass as ContextOptions.n_ctx
    n_threads: int
    n_gpu_layers: int
    n_batch: int
    n_ubatch: int
    flash_attn: bool | None
    estimate: MemoryEstimate
    ram_budget: int
    gpu_budget: int
    fits: bool
    reasons: tuple[str, ...]
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"

    def context_options(self, **changes: Any) -> ContextOptions:
        """The engine options of this plan (``changes`` override fields, e.g. embeddings=True)."""
        from ..types import ContextOptions  # deferred: keeps this module light

        values: dict[str, Any] = {
            "n_ctx": self.n_ctx_total,
            "n_batch": self.n_batch,
            "n_ubatch": self.n_ubatch,
            "n_seq_max": self.n_slots,
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
            "flash_attn": self.flash_attn,
            "type_k": self.cache_type_k,
            "type_v": self.cache_type_v,
        }
        values.update(changes)
        return ContextOptions(**values)


def _budgets(hardware: HardwareProfile, request: ResourceRequest) -> tuple[int, int, list[str]]:
    mem = hardware.memory
    if request.memory_budget:
        ram = request.memory_budget - request.memory_in_use
        why = f"memory budget {format_bytes(request.memory_budget)}"
        if request.memory_in_use:
            why += f" minus {format_bytes(request.memory_in_use)} in use"
    else:
        ram = mem.budget
        why = f"{format_bytes(mem.usable)} RAM available, keeping {format_bytes(mem.headroom)} free"
    gpu = hardware.gpu_memory_free
    if gpu:
        gpu -= min(_GIB, gpu // 10)
        if hardware.unified_memory:
            gpu = min(gpu, ram)
        why += f"; {format_bytes(gpu)} usable on the GPU"
    return max(ram, 0), max(gpu, 0), [f"budget: {why}"]


def _fits(est: MemoryEstimate, ram: int, gpu: int, unified: bool) -> bool:
    if unified:
        return est.gpu_bytes <= gpu and est.cpu_bytes + est.gpu_bytes <= ram
    return est.cpu_bytes <= ram and est.gpu_bytes <= gpu


def _gpu_layer_options(facts: ModelFacts, hardware: HardwareProfile, request: ResourceRequest) -> list[int]:
    """GPU layer counts to try, best first."""
    everything = facts.n_layer + 1  # the repeating layers plus the output head
    if not hardware.can_offload:
        return [0]
    if request.n_gpu_layers >= 0:
        return [min(request.n_gpu_layers, everything)]
    return list(range(everything, -1, -1))


def _candidates(request: ResourceRequest, ctx_target: int, par_target: int) -> Iterator[tuple[int, int]]:
    """(n_ctx, parallel) pairs to try in order: shrink context to 2048, then slots, then context."""
    ctx, par = ctx_target, par_target
    yield ctx, par
    while True:
        if not request.n_ctx and ctx > 2048:
            ctx //= 2
        elif not request.n_slots and par > 1:
            par //= 2
        elif not request.n_ctx and ctx > MIN_AUTO_CTX:
            ctx //= 2
        else:
            return
        yield ctx, par


def _targets(facts: ModelFacts, hardware: HardwareProfile, request: ResourceRequest) -> tuple[int, int, list[str]]:
    reasons = []
    if request.n_ctx:
        ctx = request.n_ctx
        reasons.append(f"context {ctx} tokens per sequence (requested)")
        if facts.n_ctx_train and ctx > facts.n_ctx_train:
            reasons.append(f"warning: {ctx} is beyond the {facts.n_ctx_train} tokens the model was trained for")
    else:
        ctx = min(AUTO_CTX, facts.n_ctx_train or AUTO_CTX)
        reasons.append(f"context {ctx} tokens per sequence (auto; model trained for {facts.n_ctx_train})")
    if request.n_slots:
        par = request.n_slots
        reasons.append(f"{par} parallel sequences (requested)")
    else:
        par = AUTO_PARALLEL_GPU if hardware.can_offload else AUTO_PARALLEL_CPU
        reasons.append(f"{par} parallel sequences (auto, {'GPU' if hardware.can_offload else 'CPU'} default)")
    return ctx, par, reasons


def _thread_reason(hardware: HardwareProfile, request: ResourceRequest) -> tuple[int, str]:
    cpu = hardware.cpu
    if request.n_threads:
        return request.n_threads, f"threads {request.n_threads} (requested)"
    threads = cpu.recommended_threads
    return threads, (
        f"threads {threads}: one per physical core this process may use "
        f"({cpu.physical_cores} physical, {cpu.logical_cores} logical, {cpu.usable_cores:g} usable)"
    )


def _gpu_reason(facts: ModelFacts, hardware: HardwareProfile, request: ResourceRequest, layers: int) -> str:
    asked = f" ({request.n_gpu_layers} requested)" if request.n_gpu_layers > 0 else ""
    if hardware.build is not None and not hardware.build.supports_gpu_offload:
        backends = ", ".join(hardware.build.backends)
        return f"GPU layers 0{asked}: this llama.cpp build is CPU-only (backends: {backends})"
    if not hardware.can_offload:
        return f"GPU layers 0{asked}: no GPU that llama.cpp can use"
    if request.n_gpu_layers >= 0:
        return f"GPU layers {layers} (requested)"
    label = "all layers" if layers > facts.n_layer else f"of {facts.n_layer + 1}"
    return f"GPU layers {layers} ({label}) fit the GPU budget"


def _search(
    facts: ModelFacts,
    hardware: HardwareProfile,
    request: ResourceRequest,
    ctx_target: int,
    par_target: int,
    limits: tuple[int, int, bool],
) -> tuple[int, int, int, MemoryEstimate]:
    """The first (n_ctx, parallel, gpu layers) that fits, else the smallest one tried."""
    last: tuple[int, int, int, MemoryEstimate] | None = None
    for ctx, par in _candidates(request, ctx_target, par_target):
        for layers in _gpu_layer_options(facts, hardware, request):
            est = estimate_memory(facts, n_ctx=ctx * par, n_seq_max=par, n_batch=request.n_batch,
                                  n_ubatch=min(request.n_ubatch, request.n_batch),
                                  flash_attn=request.flash_attn, n_gpu_layers=layers,
                                  type_k=request.cache_type_k, type_v=request.cache_type_v)
            if _fits(est, *limits):
                return ctx, par, layers, est
            if last is None or layers == 0:
                last = (ctx, par, layers, est)
    assert last is not None
    return last


def plan_resources(
    facts: ModelFacts, hardware: HardwareProfile, requested: ResourceRequest | None = None
) -> ResourcePlan:
    """Choose concrete sizes for ``facts`` on ``hardware``; never raises for "does not fit"."""
    request = requested or ResourceRequest()
    threads, thread_reason = _thread_reason(hardware, request)
    ram, gpu, reasons = _budgets(hardware, request)
    ctx_target, par_target, target_reasons = _targets(facts, hardware, request)
    reasons = [thread_reason, *target_reasons, *reasons]
    n_ubatch = min(request.n_ubatch, request.n_batch)
    unified = hardware.unified_memory

    choice = _search(facts, hardware, request, ctx_target, par_target, (ram, gpu, unified))
    ctx, par, layers, est = choice
    fits = _fits(est, ram, gpu, unified)
    if (ctx, par) != (ctx_target, par_target):
        action = "shrunk" if fits else "even the smallest choice tried"
        reasons.append(f"{action}: context {ctx} x {par} sequences")
    reasons.append(_gpu_reason(facts, hardware, request, layers))
    if (request.cache_type_k, request.cache_type_v) != ("f16", "f16"):
        reasons.append(f"KV cache {request.cache_type_k} keys / {request.cache_type_v} values: "
                       f"{format_bytes(est.kv_cache)}")
    verdict = "fits" if fits else "does NOT fit"
    reasons.append(f"needs {est.describe()}; {verdict} (RAM budget {format_bytes(ram)}"
                   + (f", GPU budget {format_bytes(gpu)})" if gpu else ")"))
    return ResourcePlan(
        model=facts.name, n_ctx=est.n_ctx_seq, n_slots=par, n_ctx_total=est.n_ctx, n_threads=threads,
        n_gpu_layers=layers, n_batch=request.n_batch, n_ubatch=n_ubatch, flash_attn=request.flash_attn,
        estimate=est, ram_budget=ram, gpu_budget=gpu, fits=fits, reasons=tuple(reasons),
        cache_type_k=request.cache_type_k, cache_type_v=request.cache_type_v,
    )


# How the advice names each remedy; the default speaks `llamarun serve`'s flags. Callers pass their
# own spelling (the CLI its flags, the library its parameters); a remedy missing from it is not offered.
ADVICE_NAMES: Mapping[str, str] = MappingProxyType(
    {name: SPELLINGS[name].flag for name in ("n_ctx", "n_slots")} | {"force": "--force"})


def check_fits(plan: ResourcePlan, *, force: bool = False, model_name: str | None = None,
               names: Mapping[str, str] | None = None, advice: str | None = None) -> None:
    """Raise InsufficientMemoryError with the numbers unless the plan fits (or ``force``).

    ``model_name`` (e.g. the store name) replaces the GGUF's own name in the message; ``names``
    maps ``n_ctx``, ``n_slots`` and ``force`` to what the caller's user types (default
    :data:`ADVICE_NAMES`); a key left out is a remedy the caller does not have. ``advice``, when
    given, replaces the remedies built from ``names`` (what the caller's user can change).
    """
    if plan.fits:
        return
    spelled = ADVICE_NAMES if names is None else names
    est = plan.estimate
    if est.gpu_bytes > plan.gpu_budget:
        where = f"GPU memory ({format_bytes(est.gpu_bytes)} needed, {format_bytes(plan.gpu_budget)} usable)"
    else:
        where = f"system memory ({format_bytes(est.cpu_bytes)} needed, {format_bytes(plan.ram_budget)} usable)"
    message = (f"model {model_name or plan.model!r} at context {plan.n_ctx} x {plan.n_slots} sequences requires "
               f"more {where}: {est.describe()}. {advice if advice is not None else _advice(spelled)}")
    if force:
        logger.warning("loading anyway (%s): %s", spelled.get("force", "force"), message)
        return
    raise InsufficientMemoryError(message)


def _advice(names: Mapping[str, str]) -> str:
    remedies = []
    if "n_ctx" in names:
        remedies.append(f"a smaller context ({names['n_ctx']})")
    if "n_slots" in names:
        remedies.append(f"fewer parallel sequences ({names['n_slots']})")
    remedies.append("a smaller model")
    text = "Use " + ", ".join(remedies[:-1]) + (" or " if len(remedies) > 1 else "") + remedies[-1]
    return text + (f", or {names['force']} to load it anyway" if "force" in names else "")
