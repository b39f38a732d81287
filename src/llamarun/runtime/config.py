"""Sizes and limits of one model's runtime, and the model manager's defaults and limits."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from ..types import ContextOptions, check_kv_cache_types
from .speculative import Speculation

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["ManagerConfig", "RuntimeConfig"]


def _check_backend(name: object) -> None:
    from ..engine.backends import BACKENDS

    if name not in BACKENDS:
        raise InvalidParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}", field="backend")


@dataclass(frozen=True)
class RuntimeConfig:
    """How one loaded model serves requests.

    ``n_ctx`` is the context of each request (prompt + output), as Ollama's
    ``num_ctx``; ``n_slots`` requests run at once.  ``min_prefix_copy`` is how many
    prompt tokens copying another slot's cached prefix must save (0: worked out from the
    model and the KV layout, see :func:`~llamarun.runtime.slots.copy_threshold`).  With ``kv_unified`` all
    slots share one pool of ``kv_size`` cells (default ``n_ctx * n_slots``;
    smaller oversubscribes it, and a full pool preempts a request, which later
    resumes by recomputing); without it each slot has its own ``n_ctx`` cells,
    which keeps attention cheap when many sequences run at once on a CPU.

    ``session_ram`` and ``session_disk`` bound the KV tiers (bytes; 0: off): the KV state of a
    conversation whose slot another request takes is saved to RAM, then to files under
    ``session_dir`` (default: ``sessions/`` in the store's home), least recently used first,
    and restored when the conversation goes on (see :mod:`llamarun.runtime.kvtiers`).
    ``speculative`` is how requests speculate unless they say otherwise (see
    :mod:`~llamarun.runtime.speculative`; a ``draft_model`` path is loaded with the model);
    ``speculative_p_min`` ends a draft model's draft at a token it gives less probability.
    ``log_prompts`` keeps the first characters of each finished request's prompt in
    :meth:`Runtime.status <llamarun.runtime.runtime.Runtime.status>` (off: nothing of a prompt is kept).
    """

    n_ctx: int = 4096
    n_slots: int = 4
    kv_unified: bool = False
    kv_size: int = 0
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_gpu_layers: int = 0
    flash_attn: bool | None = None
    cache_type_k: str = "f16"  # KV-cache element types (KV_CACHE_TYPES); a quantized V needs flash attention
    cache_type_v: str = "f16"
    embeddings: bool = False
    max_queue: int = 64
    min_prefix_copy: int = 0
    backend: str = "llama.cpp"  # or "numpy": see llamarun.engine.BACKENDS
    session_ram: int = 256 << 20
    session_disk: int = 2 << 30
    session_dir: str = ""
    speculative: Speculation | None = None
    speculative_p_min: float = 0.5
    log_prompts: bool = False

    def __post_init__(self) -> None:
        _check_backend(self.backend)
        checks = {
            "n_ctx": (16, 1 << 22), "n_slots": (1, 256), "n_batch": (1, 1 << 16), "n_ubatch": (1, 1 << 16),
            "max_queue": (0, 1 << 20), "kv_size": (0, 1 << 24), "min_prefix_copy": (0, 1 << 20),
            "session_ram": (0, 1 << 50), "session_disk": (0, 1 << 50),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidParameterError(f"{name} must be an integer between {lo} and {hi}", field=name)
        check_kv_cache_types(self.cache_type_k, self.cache_type_v, self.flash_attn,
                             names=("cache_type_k", "cache_type_v", "flash_attn"))
        if self.kv_size and self.kv_size < self.n_ctx:
            raise InvalidParameterError("kv_size must be at least n_ctx (one request must fit)", field="kv_size")
        if not self.kv_unified and self.kv_size not in (0, self.n_ctx * self.n_slots):
            raise InvalidParameterError("kv_size can differ from n_ctx * n_slots only with kv_unified", field="kv_size")
        if not 0.0 <= self.speculative_p_min <= 1.0:
            raise InvalidParameterError("speculative_p_min must be between 0 and 1", field="speculative_p_min")

    @property
    def total_kv(self) -> int:
        return self.kv_size or self.n_ctx * self.n_slots

    def context_options(self) -> ContextOptions:
        """The engine's options for the context of this runtime (all slots' KV together)."""
        return ContextOptions(
            n_ctx=self.total_kv, n_batch=self.n_batch, n_ubatch=self.n_ubatch, n_seq_max=self.n_slots,
            n_threads=self.n_threads, n_threads_batch=self.n_threads_batch, flash_attn=self.flash_attn,
            embeddings=self.embeddings, kv_unified=self.kv_unified, type_k=self.cache_type_k,
            type_v=self.cache_type_v)


@dataclass(frozen=True)
class ManagerConfig:
    """Defaults for every model (0 / -1 = choose from the hardware) and the manager's limits.

    Fields are named as in :class:`RuntimeConfig` (``n_slots``, ``n_threads``) or, for the
    manager's own limits, as the settings name them (``max_loaded_models``)."""

    n_ctx: int = 0
    n_slots: int = 0
    n_threads: int = 0
    n_batch: int = 512
    n_ubatch: int = 512
    n_gpu_layers: int = -1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    max_queue: int = 512
    max_loaded_models: int = 3
    memory_budget: int = 0  # bytes for all loaded models; 0 = what is available minus hw's headroom
    keep_alive: float = 300.0
    wait_timeout: float = 600.0  # how long a request waits for busy models to make room
    max_request_ctx: int = 0  # largest n_ctx a request may ask; 0 = max(n_ctx, the model's training context)
    allow_request_reload: bool = False  # may a request's load options reload a model with other settings?
    backend: str = "llama.cpp"  # the engine every model is loaded with ("llama.cpp" or "numpy")
    session_ram: int = 256 << 20  # bytes of saved KV states kept in RAM per model (0: none)
    session_disk: int = 2 << 30  # bytes of saved KV states on disk per model (0: none)
    session_dir: str = ""  # where the disk tier writes ("": sessions/ in the store's home)
    speculative: str = "off"  # how requests speculate unless they say otherwise ("off", "ngram", "draft")
    speculative_n_max: int = 8
    speculative_draft_model: str = ""  # GGUF path of the draft model loaded with each model ("": none)
    log_prompts: bool = False  # the dashboard's recent requests keep a prefix of each prompt

    def __post_init__(self) -> None:
        _check_backend(self.backend)
        self.speculation()  # refuses a type or length it cannot run

    def speculation(self) -> Speculation | None:
        """How every model's requests speculate unless they say otherwise (None: off, no draft model)."""
        if self.speculative == "off" and not self.speculative_draft_model:
            return None
        if self.speculative_draft_model and not Path(self.speculative_draft_model).expanduser().is_file():
            raise InvalidParameterError(f"speculative_draft_model {self.speculative_draft_model!r} is not a file: "
                                        "give the GGUF path of the draft model", field="speculative_draft_model")
        if self.speculative == "draft" and not self.speculative_draft_model:
            raise InvalidParameterError("speculative 'draft' needs speculative_draft_model (--draft-model), "
                                        "the GGUF of a smaller model of the same vocabulary",
                                        field="speculative_draft_model")
        return Speculation(type=self.speculative, n_max=self.speculative_n_max,
                           draft_model=self.speculative_draft_model or None)

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> ManagerConfig:
        """The manager's config from the settings (names translated by :mod:`llamarun.config.names`)."""
        from ..config.names import settings_values

        return cls(**{**settings_values(settings, (f.name for f in fields(cls))), **changes})
