"""Default sampling: what the model's GGUF recommends (``general.sampling.*``), else Ollama's.

llama.cpp reads the same keys (``general.sampling.temp``, ``top_k``, ``top_p``, ``min_p``,
``penalty_last_n``, ``penalty_repeat``, ``mirostat``, ``mirostat_tau``, ``mirostat_eta``) as its
defaults.  An explicit value in a request always wins over both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["OLLAMA_DEFAULTS", "declared_sampling", "default_sampling"]

#: Ollama's defaults, with its repeat penalty: greedy decoding makes small models loop.
OLLAMA_DEFAULTS: Mapping[str, Any] = MappingProxyType({"temperature": 0.8, "top_k": 40, "top_p": 0.9,
                                                       "repeat_penalty": 1.1, "repeat_last_n": 64})

# GGUF key -> (SamplingParams field, type, lowest, highest)
_GGUF_KEYS: Mapping[str, tuple[str, type, float, float]] = MappingProxyType({
    "general.sampling.temp": ("temperature", float, 0.0, 100.0),
    "general.sampling.top_k": ("top_k", int, 0, 1_000_000),
    "general.sampling.top_p": ("top_p", float, 0.0, 1.0),
    "general.sampling.min_p": ("min_p", float, 0.0, 1.0),
    "general.sampling.penalty_last_n": ("repeat_last_n", int, -1, 1_000_000),
    "general.sampling.penalty_repeat": ("repeat_penalty", float, 0.0, 100.0),
    "general.sampling.mirostat": ("mirostat", int, 0, 2),
    "general.sampling.mirostat_tau": ("mirostat_tau", float, 0.0, 100.0),
    "general.sampling.mirostat_eta": ("mirostat_eta", float, 0.0, 10.0),
})


def _parse(raw: str, kind: type, lo: float, hi: float) -> Any:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or not lo <= value <= hi or (kind is int and value != int(value)):
        return None
    return int(value) if kind is int else value


def declared_sampling(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The sampling values the model's GGUF declares (values that do not parse are skipped)."""
    out: dict[str, Any] = {}
    for key, (name, kind, lo, hi) in _GGUF_KEYS.items():
        if key in metadata:
            value = _parse(metadata[key], kind, lo, hi)
            if value is not None:
                out[name] = value
    return out


def default_sampling(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The defaults of the library and the Ollama API: the model's declared values over Ollama's."""
    return {**OLLAMA_DEFAULTS, **declared_sampling(metadata)}
