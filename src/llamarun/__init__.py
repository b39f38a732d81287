"""llamarun: a local LLM runtime for Python.

    import llamarun
    with llamarun.load("smollm2") as model:
        print(model.generate("The capital of France is", max_tokens=8).text)

Public names are imported lazily, so ``import llamarun`` does no work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ChatResult",
    "Chunk",
    "FinishReason",
    "GenerationRequest",
    "GenerationResult",
    "LoadedModel",
    "LlamarunError",
    "RuntimeConfig",
    "SamplingParams",
    "Session",
    "Timings",
    "errors",
    "load",
]

_LAZY = {
    "load": "api", "LoadedModel": "api", "ChatResult": "api",
    "Chunk": "types", "FinishReason": "types", "GenerationResult": "types", "SamplingParams": "types",
    "Timings": "types",
    "GenerationRequest": "runtime", "RuntimeConfig": "runtime",
    "LlamarunError": "errors",
    "Session": "session",
}

if TYPE_CHECKING:
    from . import errors
    from .api import ChatResult, LoadedModel, load
    from .errors import LlamarunError
    from .runtime import GenerationRequest, RuntimeConfig
    from .session import Session
    from .types import Chunk, FinishReason, GenerationResult, SamplingParams, Timings


def __getattr__(name: str) -> Any:
    import importlib

    if name == "errors":
        return importlib.import_module(".errors", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llamarun' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
