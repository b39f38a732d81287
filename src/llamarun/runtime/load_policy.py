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

:func:`plan_load` is the one planner of a load, for :func:`llamarun.load` and the manager
alike: :func:`llamarun.hardware.plan_resources` (what ``llamarun hw`` shows), then a
:class:`RuntimeConfig` of the plan's sizes.  :func:`hardware_planner` is the manager's use of
it, within the manager's budget; :func:`available_budget` is the memory a new load may use,
keeping the same headroom as ``hw``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..config.names import OLLAMA_NAMES
from ..errors import InvalidParameterError
from .config import RuntimeConfig

if TYPE_CHECKING:
    from pathlib import Path

    from ..hardware import HardwareProfile, ResourcePlan, ResourceRequest
    from .config import ManagerConfig
    from .leases import ModelSource

__all__ = [
    "HardwareCache",
    "LoadOptions",
    "MODELFILE_LOAD_NAMES",
    "PLANNED_FIELDS",
    "Planner",
    "RequestLimits",
    "available_budget",
    "check_limits",
    "check_served",
    "hardware_limits",
    "hardware_planner",
    "modelfile_load_settings",
    "plan_load",
]

_SERVE_ADVICE = ("Ask for a smaller options.num_ctx, or start serve with a smaller --ctx, fewer --parallel "
                 "sequences or a larger --memory-budget, or use a smaller model")
_FALLBACK_CTX = 4096  # when the model does not say how long a context it was trained for
_OPTIONS = ("n_ctx", "n_threads", "n_batch", "n_gpu_layers")
# The RuntimeConfig fields a hardware plan chooses, and the manager's defaults for them
PLANNED_FIELDS = ("n_ctx", "n_slots", "n_threads", "n_gpu_layers", "n_batch", "n_ubatch", "flash_attn",
                  "cache_type_k", "cache_type_v")
_MANAGER_DEFAULTS = ("n_ctx", "n_slots", "n_threads", "n_gpu_layers", "n_batch", "n_ubatch",
                     "cache_type_k", "cache_type_v")
_MIN_CTX = 16  # RuntimeConfig's smallest n_ctx
# How a Modelfile (Ollama) names each load option (a view of the one table, llamarun.config.names)
MODELFILE_LOAD_NAMES: Mapping[str, str] = MappingProxyType({k: OLLAMA_NAMES[k] for k in _OPTIONS})


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
    """The hardware profile, detected once (CPU, RAM size, GPUs do not change), or the one given."""

    def __init__(self, profile: HardwareProfile | None = None) -> None:
        self._profile: Any = profile
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
        return RequestLimits(max_ctx=max_ctx, max_threads=max(cores, config.n_threads))

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


def modelfile_load_settings(parameters: Mapping[str, Any]) -> dict[str, int]:
    """A Modelfile's load settings under our names (``num_ctx`` -> ``n_ctx``; ``num_thread`` 0: none)."""
    return {ours: int(parameters[theirs]) for ours, theirs in MODELFILE_LOAD_NAMES.items()
            if parameters.get(theirs) is not None and not (theirs == "num_thread" and parameters[theirs] == 0)}


def plan_load(path: Path, profile: HardwareProfile, request: ResourceRequest, *, model_name: str = "",
              force: bool = False, names: Mapping[str, str] | None = None, advice: str | None = None,
              **fields: Any) -> tuple[RuntimeConfig, ResourcePlan]:
    """The one planner of a model's load: :func:`llamarun.load` and the model manager both use it.

    :func:`~llamarun.hardware.plan_resources` fills what ``request`` leaves automatic within its
    ``memory_budget`` (0: what ``profile`` says is available), :func:`~llamarun.hardware.check_fits`
    refuses a plan that does not fit (unless ``force``; ``names``/``advice`` say the remedies in the
    caller's words), and the :class:`RuntimeConfig` takes the plan's sizes: an asked ``n_ctx`` as
    asked, else the plan's (padded, at least 16 tokens), ``flash_attn`` as the request gives it
    (None: llama.cpp chooses).  ``fields`` are the RuntimeConfig fields no plan chooses
    (``max_queue``, ``kv_unified``, ``embeddings``, ...).
    """
    from ..gguf import read_model_facts
    from ..hardware import check_fits, plan_resources

    plan = plan_resources(read_model_facts(path), profile, request)
    check_fits(plan, force=force, model_name=model_name or None, names=names, advice=advice)
    chosen = {name: getattr(plan, name) for name in PLANNED_FIELDS}
    chosen["n_ctx"] = request.n_ctx or max(_MIN_CTX, plan.n_ctx)
    return RuntimeConfig(**chosen, **fields), plan


def _manager_request(options: LoadOptions, config: ManagerConfig, budget: int) -> ResourceRequest:
    """The manager's defaults under a request's (or Modelfile's) load options (0 or None: not given;
    ``n_gpu_layers`` 0 is CPU only), within ``budget`` bytes."""
    from ..hardware import ResourceRequest

    asked = {k: v for k in _OPTIONS if (v := getattr(options, k)) is not None and (v or k == "n_gpu_layers")}
    defaults = {k: getattr(config, k) for k in _MANAGER_DEFAULTS}
    return ResourceRequest(**{**defaults, **asked}, memory_budget=max(1, budget))


def hardware_planner(hardware: HardwareCache | None = None) -> Planner:
    """The manager's planner: :func:`plan_load` on this machine's profile, within the manager's budget."""
    cache = hardware or HardwareCache()

    def plan(source: ModelSource, options: LoadOptions, config: ManagerConfig,
             budget: int) -> tuple[RuntimeConfig, int]:
        runtime_config, resources = plan_load(
            source.path, cache.profile(), _manager_request(options, config, budget), model_name=source.name,
            advice=_SERVE_ADVICE, max_queue=config.max_queue, session_ram=config.session_ram,
            session_disk=config.session_disk, session_dir=config.session_dir,
            backend=config.backend, speculative=config.speculation(), log_prompts=config.log_prompts)
        return runtime_config, resources.estimate.total

    return plan
