"""Quantize a stored model into the store: llama.cpp does the work, the store keeps the result.

:func:`quantize_stored` is what ``llamarun quantize`` and Ollama's ``/api/create`` with
``quantize`` run: :func:`llamarun.engine.quantize_gguf` writes the new GGUF into the store's
work area, :func:`llamarun.store.quantized.store_quantized` hashes it, names it and records
its provenance, and (unless ``measure`` is off) :mod:`llamarun.quality` measures the
perplexity of both on the same text, which the manifest keeps as the quality cost.

It sits above ``engine`` and ``store``, which must not import each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine.quantize import QuantizeProgress, quant_type
from .errors import InvalidParameterError
from .quality import QualityCost
from .store import ModelStore, StoredModel
from .store.names import parse_ref
from .store.progress import ProgressFn, PullProgress, no_progress
from .store.quantized import quantized_name, store_quantized

__all__ = ["QuantizeResult", "quantize_stored"]


@dataclass(frozen=True)
class QuantizeResult:
    """The stored result, where it came from, how long it took and what it cost in quality."""

    model: StoredModel
    source: StoredModel
    type: str
    seconds: float
    requantized: bool
    quality: QualityCost | None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.model.name, "digest": self.model.digest, "size": self.model.size,
            "source": self.source.name, "source_digest": self.source.digest, "type": self.type,
            "source_size": self.source.size, "seconds": round(self.seconds, 3), "requantized": self.requantized,
        }
        if self.quality is not None:
            data["perplexity"] = {"before": self.quality.before, "after": self.quality.after,
                                  "increase": self.quality.increase, "tokens": self.quality.scored_tokens}
        return data


def _progress_events(emit: ProgressFn) -> Callable[[QuantizeProgress], None]:
    def on_tensor(step: QuantizeProgress) -> None:
        emit(PullProgress(f"quantizing {step.tensor[:48]}", "", step.total, step.done))

    return on_tensor


def quantize_stored(source: str, type_name: str, *, name: str | None = None, allow_requantize: bool = False,
                    store: ModelStore | None = None, n_threads: int = 0, measure: bool = True,
                    emit: ProgressFn = no_progress) -> QuantizeResult:
    """Quantize the stored model ``source`` to ``type_name`` and store it as ``name``
    (default ``<source>:<type>``, e.g. ``smollm2:q4_0``).

    A source that is already quantized needs ``allow_requantize`` (llama.cpp's
    ``allow_requantize``; SmolLM2's stored file is Q4_1).  A damaged source is a
    :class:`~llamarun.errors.GGUFFormatError`, a llama.cpp failure a
    :class:`~llamarun.errors.QuantizeError`; either way nothing is stored.
    """
    from .engine.quantize import is_quantized, quantize_gguf
    from .gguf import check_gguf

    store = store or ModelStore()
    qtype = quant_type(type_name)
    original = store.get(source)
    ref = parse_ref(name) if name else quantized_name(original.ref, qtype.name)
    requantized = is_quantized(check_gguf(original.path))
    if requantized and not allow_requantize:
        raise InvalidParameterError(
            f"{original.name} is already quantized ({original.facts.get('quantization', '?')}); quantizing it to "
            f"{qtype.name} is requantizing, which adds the errors of both: allow it with --allow-requantize "
            "(llama.cpp's allow_requantize), or quantize from an F16/BF16/F32 file", field="allow_requantize")
    started = time.perf_counter()

    def write(path: Path) -> Any:
        return quantize_gguf(original.path, path, qtype.name, allow_requantize=allow_requantize,
                             n_threads=n_threads, progress=_progress_events(emit))

    extra = {"requantized": requantized, "llama_ftype": qtype.ftype}
    model = store_quantized(store.layout, ref, original, qtype.name, write, extra=extra, emit=emit)
    seconds = time.perf_counter() - started
    quality = None
    if measure:
        quality = _measure(store, model, original, emit, n_threads)
    return QuantizeResult(store.get(str(ref)), original, qtype.name, seconds, requantized, quality)


def _measure(store: ModelStore, model: StoredModel, original: StoredModel, emit: ProgressFn,
             n_threads: int) -> QualityCost:
    """Perplexity of both on the sample text; the result goes into the new model's manifest."""
    from .quality import quality_cost

    emit(PullProgress("measuring perplexity"))
    cost = quality_cost(original.path, model.path, n_threads=n_threads or None)
    manifest = dict(model.manifest)
    manifest["quantized_from"] = {**manifest.get("quantized_from", {}), "perplexity_before": cost.before,
                                  "perplexity_after": cost.after, "perplexity_tokens": cost.scored_tokens}
    store.layout.write_manifest(model.ref, manifest)
    return cost
