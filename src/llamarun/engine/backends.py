"""The engines a model can run on, which of them work in this process, and opening a model on one."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ._lib import llama_cpp_error

if TYPE_CHECKING:
    from ..runtime.config import RuntimeConfig

__all__ = ["BACKENDS", "backend_status", "open_model"]

BACKENDS = ("llama.cpp", "numpy")


def backend_status() -> dict[str, str | None]:
    """Each backend -> None when it works here, else why not (llama.cpp is loaded to find out)."""
    status: dict[str, str | None] = {"llama.cpp": llama_cpp_error()}
    try:
        import gguf  # noqa: F401 - the NumPy backend reads GGUF with it

        status["numpy"] = None
    except ImportError as exc:
        status["numpy"] = f"ImportError: {exc}"
    return status


def open_model(path: str | os.PathLike[str], config: RuntimeConfig) -> Any:
    """Load ``path`` on ``config.backend``: the llama.cpp :class:`~llamarun.engine.Model` or the NumPy one."""
    if config.backend == "numpy":
        from ..numpy_engine import Model as NumpyModel

        return NumpyModel(path)
    error = llama_cpp_error()
    if error is not None:
        raise ModelLoadError(f"llama.cpp is not available in this process ({error}); "
                             "install llama-cpp-python, or load with backend='numpy'", path=str(path))
    from .model import Model

    return Model(path, n_gpu_layers=config.n_gpu_layers)
