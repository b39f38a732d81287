"""Sizes and limits of one model's runtime."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

__all__ = ["RuntimeConfig"]


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
    embeddings: bool = False
    max_queue: int = 64
    min_prefix_copy: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_ctx": (16, 1 << 22), "n_slots": (1, 256), "n_batch": (1, 1 << 16), "n_ubatch": (1, 1 << 16),
            "max_queue": (0, 1 << 20), "kv_size": (0, 1 << 24), "min_prefix_copy": (0, 1 << 20),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidParameterError(f"{name} must be an integer between {lo} and {hi}", field=name)
        if self.kv_size and self.kv_size < self.n_ctx:
            raise InvalidParameterError("kv_size must be at least n_ctx (one request must fit)", field="kv_size")
        if not self.kv_unified and self.kv_size not in (0, self.n_ctx * self.n_slots):
            raise InvalidParameterError("kv_size can differ from n_ctx * n_slots only with kv_unified", field="kv_size")

    @property
    def total_kv(self) -> int:
        return self.kv_size or self.n_ctx * self.n_slots
