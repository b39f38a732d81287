"""What a request may ask of a model's load, and how a load is planned on this machine.

A request's load options (:class:`LoadOptions`: context, threads, batch, GPU
layers) are bounded before anything is loaded:

- by the machine and the operator (:func:`check_limits`): ``n_ctx`` up to the
  operator's ``max_request_ctx`` (auto: the larger of the configured context and
  the model's training context), ``n_threads`` up to the usable cores (or the
  operator's own thread count when larger);
- by the loaded model (:func:`check_served`) when the operator does not allow
  requests to reload models: a request is served by the settings the server
  loads the model with, or refused naming the option it cannot have.

:func:`hardware_planner` plans a load with :func:`llamarun.hardware.plan_resources`,
the planner ``llamarun hw`` uses, within the manager's budget; :func:`available_budget`
is the memory a new load may use, keeping the same headroom as ``hw``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from .config import RuntimeConfig

if TYPE_CHECKING:
    from .config import ManagerConfig
    from .leases import ModelSource

__all__ = [
    "HardwareCache",
    "LoadOptions",
    "MODELFILE_LOAD_NAMES",
    "Planner",
    "RequestLimits",
    "available_budget",
    "check_limits",
    "check_served",
    "hardware_limits",
    "hardware_planner",
]

_SERVE_ADVICE = ("Ask for a smaller options.num_ctx, or start serve with a smaller --ctx, fewer --parallel "
                 "sequences or a larger --memory-budget, or use a smaller model")
_FALLBACK_CTX = 4096  # when the model does not say how long a context it was trained for
_OPTIONS = ("n_ctx", "n_threads", "n_batch", "n_gpu_layers")
# How a Modelfile (Ollama) names each load option
MODELFILE_LOAD_NAMES: Mapping[str, str] = MappingProxyType(
    {"n_ctx": "num_ctx", "n_threads": "num_thread", "n_batch": "num_batch", "n_gpu_layers": "num_gpu"})


@dataclass(frozen=True)
class LoadOptions:
    """Settings a request may ask for that are fixed when a model loads (None: no preference).

    ``labels`` maps a field to the name the request used (``n_ctx`` -> ``options.num_ctx``),
    so that an error names what the client sent.
    """

    n_ctx: int | None = None
    n_threads: int | None = None
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    labels: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, name)

    @property
    def given(self) -> bool:
        """True when the request states any load option."""
        return any(getattr(self, k) is not None for k in _OPTIONS)

    @classmethod
    def of_model(cls, source: ModelSource) -> LoadOptions:
        """A model's own load settings (its Modelfile's), named as the Modelfile names them in errors."""
        settings = dict(source.load_settings)
        return cls(**{k: settings.get(k) for k in _OPTIONS},
                   labels=tuple((k, f"PARAMETER {v} in the Modelfile of {source.name}")
                                for k, v in MODELFILE_LOAD_NAMES.items()))

    def over(self, base: LoadOptions) -> LoadOptions:
        """These options where given, ``base``'s elsewhere (a request's over a model's own)."""
        chosen = {k: self if getattr(self, k) is not None else base for k in _OPTIONS}
        return LoadOptions(**{k: getattr(o, k) for k, o in chosen.items()},
                           labels=tuple((k, o.label(k)) for k, o in chosen.items()))  # named as who gave it

    def matches(self, config: RuntimeConfig, loaded_with: LoadOptions | None = None) -> bool:
        """True when a model loaded with ``config`` (asked for as ``loaded_with``) serves these options."""
        asked = loaded_with or LoadOptions()
        return all(
            wanted is None or wanted == actual or wanted == before
            for wanted, actual, before in (
                (self.n_ctx, config.n_ctx, asked.n_ctx),
                (self.n_threads, config.n_threads, asked.n_threads),
                (self.n_batch, config.n_batch, asked.n_batch),
                (self.n_gpu_layers, config.n_gpu_layers, asked.n_gpu_layers),
            )
        )


@dataclass(frozen=True)
class RequestLimits:
    """The largest load options one request may ask for a model."""

    max_ctx: int
    max_threads: int


Planner = Callable[["ModelSource", LoadOptions, "ManagerConfig", int], tuple[RuntimeConfig, int]]
"""``(source, options, config, budget_bytes) -> (runtime config, estimated bytes)``; raises
:class:`InsufficientMemoryError` when the model cannot fit the budget even alone."""

Limits = Callable[["ModelSource", "ManagerConfig"], RequestLimits]


class HardwareCache:
    """The hardware profile, detected once (CPU, RAM size, GPUs do not change)."""

    def __init__(self) -> None:
        self._profile: Any = None
        self._lock = threading.Lock()

    def profile(self) -> Any:
        with self._lock:
            if self._profile is None:
                from ..hardware import detect_hardware

                self._profile = detect_hardware()
            return self._profile


def hardware_limits(hardware: HardwareCache | None = None) -> Limits:
    """Limits from the operator's settings, the model's GGUF header and this machine's cores."""
    cache = hardware or HardwareCache()

    def limits(source: ModelSource, config: ManagerConfig) -> RequestLimits:
        from ..gguf import read_model_facts

        max_ctx = config.max_request_ctx
        if not max_ctx:
            max_ctx = max(config.n_ctx, read_model_facts(source.path).n_ctx_train or _FALLBACK_CTX)
        cores = max(1, math.ceil(cache.profile().cpu.usable_cores))
        return RequestLimits(max_ctx=max_ctx, max_threads=max(cores, config.threads))

    return limits


def check_limits(options: LoadOptions, limits: RequestLimits, model: str) -> None:
    """Refuse (400, naming the option) load options beyond what the operator and machine allow."""
    if options.n_ctx is not None and options.n_ctx > limits.max_ctx:
        label = options.label("n_ctx")
        raise InvalidParameterError(
            f"{label} {options.n_ctx} is above the largest context a request may ask for {model} on this server "
            f"({limits.max_ctx} tokens); ask for at most {limits.max_ctx} (the operator sets the ceiling with "
            "max_request_ctx / serve --max-request-ctx)", field=label)
    if options.n_threads is not None and options.n_threads > limits.max_threads:
        label = options.label("n_threads")
        raise InvalidParameterError(
            f"{label} {options.n_threads} is more threads than this machine's {limits.max_threads} usable cores; "
            f"ask for at most {limits.max_threads} or leave it out", field=label)


def check_served(options: LoadOptions, config: RuntimeConfig, model: str) -> None:
    """Refuse (400, naming the option) a request the settings ``config`` cannot serve.

    A context at least ``n_ctx`` serves the request (it gets at least the context it asked
    for); threads, batch size and GPU layers must equal the loaded ones (GPU layers -1: any).
    """
    checks = (
        ("n_ctx", options.n_ctx, config.n_ctx, options.n_ctx is None or options.n_ctx <= config.n_ctx, "--ctx"),
        ("n_threads", options.n_threads, config.n_threads,
         options.n_threads is None or options.n_threads == config.n_threads, "--threads"),
        ("n_batch", options.n_batch, config.n_batch, options.n_batch is None or options.n_batch == config.n_batch,
         "n_batch"),
        ("n_gpu_layers", options.n_gpu_layers, config.n_gpu_layers,
         options.n_gpu_layers in (None, -1, config.n_gpu_layers), "n_gpu_layers"),
    )
    for name, wanted, actual, ok, setting in checks:
        if not ok:
            label = options.label(name)
            raise InvalidParameterError(
                f"{label} {wanted} needs {model} loaded with other settings than this server's ({actual}), and "
                f"requests may not reload models here: leave {label} out, or the operator sets it ({setting}) or "
                "allows reloads (allow_request_reload / serve --allow-request-reload)", field=label)


def available_budget() -> int:
    """Bytes a new model may use now: usable RAM minus the headroom ``llamarun hw`` keeps free."""
    from ..hardware import detect_memory

    return max(0, detect_memory().budget)


def hardware_planner(hardware: HardwareCache | None = None) -> Planner:
    """The default planner: :func:`llamarun.hardware.plan_resources` on this machine's profile."""
    cache = hardware or HardwareCache()

    def plan(source: ModelSource, options: LoadOptions, config: ManagerConfig,
             budget: int) -> tuple[RuntimeConfig, int]:
        from ..gguf import read_model_facts
        from ..hardware import ResourceRequest, check_fits, plan_resources

        n_batch = options.n_batch or config.n_batch
        request = ResourceRequest(
            n_ctx=options.n_ctx or config.n_ctx, parallel=config.parallel,
            threads=options.n_threads or config.threads,
            n_gpu_layers=config.n_gpu_layers if options.n_gpu_layers is None else options.n_gpu_layers,
            n_batch=n_batch, n_ubatch=min(config.n_ubatch, n_batch), memory_budget=max(1, budget),
        )
        resources = plan_resources(read_model_facts(source.path), cache.profile(), request)
        check_fits(resources, model_name=source.name, advice=_SERVE_ADVICE)
        runtime_config = RuntimeConfig(
            n_ctx=options.n_ctx or max(16, resources.n_ctx), n_slots=resources.parallel,
            n_batch=resources.n_batch, n_ubatch=resources.n_ubatch,
            n_threads=options.n_threads or resources.threads, n_gpu_layers=resources.n_gpu_layers,
            flash_attn=resources.flash_attn, max_queue=config.max_queue, backend=config.backend,
        )
        return runtime_config, resources.estimate.total

    return plan
