"""What the model manager hands out and shows: a resolved model, a lease on a loaded one, its status.

:class:`~llamarun.runtime.manager.ModelManager` resolves a name to a :class:`ModelSource`,
gives each request a :class:`Lease` and lists :class:`ModelStatus` for ``/api/ps`` and ``/health``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine import ModelInfo
    from .config import RuntimeConfig
    from .embed import Embedder
    from .runtime import Health, Runtime

__all__ = ["Lease", "ModelSource", "ModelStatus"]


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: its canonical name (``name:tag``), GGUF path and digest.

    ``load_settings`` are the model's own load settings (its Modelfile's ``num_ctx``,
    ``num_thread``, ``num_batch``, ``num_gpu`` as ``n_ctx``, ``n_threads``, ``n_batch``,
    ``n_gpu_layers``): the manager loads the model with them, below a request's options
    where the operator allows those, and bounds them as it bounds a request's.
    """

    name: str
    path: Path
    digest: str = ""
    load_settings: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ModelStatus:
    """A loaded (or loading) model as ``/api/ps`` and ``/health`` show it."""

    name: str
    path: Path
    digest: str
    state: str  # "loading" | "ready"
    config: RuntimeConfig
    size_bytes: int
    in_use: int
    expires_at: float | None  # wall-clock seconds; None while in use or kept forever
    loaded_at: float
    info: ModelInfo | None
    health: Health | None


class Lease:
    """A model held for one request; :meth:`release` (or leaving ``with``) when done."""

    def __init__(self, runtime: Runtime, source: ModelSource, config: RuntimeConfig, *,
                 release: Callable[[], None], embedder: Callable[[], Embedder]) -> None:
        self._release = release
        self._embedder = embedder
        self._released = False
        self.runtime = runtime
        self.name = source.name
        self.source = source
        self.config = config
        self.load_s = 0.0

    @property
    def info(self) -> ModelInfo:
        return self.runtime.info

    def embedder(self) -> Embedder:
        return self._embedder()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
