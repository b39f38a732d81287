"""Quantizing a GGUF file with llama.cpp's ``llama_model_quantize`` (what ``llama-quantize`` does).

The offered types (:data:`QUANT_TYPES`) are the ones llama.cpp makes without an importance
matrix.  The source is checked with :func:`llamarun.gguf.check_gguf` before llama.cpp sees it,
so a damaged file is a :class:`~llamarun.errors.GGUFFormatError` naming it; a failure inside
llama.cpp is a :class:`~llamarun.errors.QuantizeError`; in both cases the output file is
removed.  Progress comes from the line llama.cpp logs for each tensor (``[  12/ 273] name``).

A source whose weights are already quantized (SmolLM2's Q4_1, most downloads) is *requantized*:
llama.cpp refuses that unless ``allow_requantize`` is set (its ``--allow-requantize``), because
errors of the first quantization add up with the second.  Quantize from an F16/BF16/F32 file
when one exists.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameterError, QuantizeError
from ..gguf import GGUFInfo, check_gguf
from ._lib import lib, log_listener

__all__ = ["QUANT_TYPES", "QuantType", "QuantizeProgress", "is_quantized", "quant_type", "quant_types", "quantize_gguf"]

# [  12/ 273]   blk.0.attn_q.weight - ...
_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})


@dataclass(frozen=True)
class QuantType:
    """A weight format llama.cpp can write: its name, llama.cpp's ``llama_ftype`` and a size hint."""

    name: str  # as llama-quantize spells it: Q4_K_M
    ftype: int  # llama_ftype (gguf.LlamaFileType)
    bits: float  # about how many bits per weight (llama-quantize's table, for a 7B llama)
    note: str


def quant_types() -> dict[str, QuantType]:
    """The offered types by name (built on each call: no work at import time)."""
    import gguf  # the gguf package's table of llama_ftype values

    rows = (
        ("F16", 16.0, "no quantization (half precision)"), ("BF16", 16.0, "no quantization (bfloat16)"),
        ("Q8_0", 8.5, "almost lossless"), ("Q6_K", 6.6, "very small loss"),
        ("Q5_K_M", 5.7, "small loss"), ("Q5_K_S", 5.5, "small loss"), ("Q5_1", 6.0, "small loss"),
        ("Q5_0", 5.5, "small loss"), ("Q4_K_M", 4.9, "balanced (Ollama's usual default)"),
        ("Q4_K_S", 4.6, "more loss than Q4_K_M"), ("Q4_1", 5.0, "legacy 4-bit"),
        ("Q4_0", 4.5, "legacy 4-bit; repacked for fast AVX2/AVX-512/NEON kernels"),
        ("IQ4_NL", 4.5, "4-bit non-linear"), ("IQ4_XS", 4.3, "4-bit non-linear, smaller"),
        ("Q3_K_L", 4.3, "large loss"), ("Q3_K_M", 3.9, "large loss"), ("Q3_K_S", 3.5, "very large loss"),
        ("Q2_K", 3.4, "extreme loss"),
    )
    return {name: QuantType(name, int(gguf.LlamaFileType[f"MOSTLY_{name}"]), bits, note) for name, bits, note in rows}


QUANT_TYPES: tuple[str, ...] = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M",
                                "Q4_K_S", "Q4_1", "Q4_0", "IQ4_NL", "IQ4_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")


def quant_type(name: str) -> QuantType:
    """The offered type called ``name`` (any case: ``q4_k_m``); InvalidParameterError otherwise."""
    found = quant_types().get(name.strip().upper())
    if found is None:
        raise InvalidParameterError(f"unknown quantization type {name[:40]!r}: choose one of "
                                    f"{', '.join(QUANT_TYPES)}", field="type")
    return found


def is_quantized(info: GGUFInfo) -> bool:
    """True when the file's matrices are already quantized (quantizing it again is requantizing)."""
    return any(t.type_name.upper() not in _FLOAT_TYPES for t in info.tensors if len(t.shape) >= 2)


@dataclass(frozen=True)
class QuantizeProgress:
    """One tensor written: ``done`` of ``total``, the tensor's name."""

    done: int
    total: int
    tensor: str


def _params(qtype: QuantType, allow_requantize: bool, n_threads: int) -> object:
    params = lib().llama_model_quantize_default_params()
    params.ftype = qtype.ftype
    params.allow_requantize = allow_requantize
    params.nthread = n_threads
    return params


def _progress_listener(progress: Callable[[QuantizeProgress], None], failures: list[str]) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        match = _TENSOR_LINE.match(line)
        if match:
            progress(QuantizeProgress(int(match[1]), int(match[2]), match[3]))
        elif "failed to quantize" in line or "error" in line.lower():
            failures.append(line.strip())

    return on_line


def quantize_gguf(source: str | os.PathLike[str], output: str | os.PathLike[str], type_name: str, *,
                  allow_requantize: bool = False, n_threads: int = 0,
                  progress: Callable[[QuantizeProgress], None] | None = None) -> GGUFInfo:
    """Write ``source`` quantized to ``type_name`` as ``output``; return the output's GGUF facts.

    Refuses (InvalidParameterError, field ``allow_requantize``) a source that is already
    quantized unless ``allow_requantize``; ``n_threads`` 0 uses every core.
    """
    qtype = quant_type(type_name)
    src, out = Path(source), Path(output)
    info = check_gguf(src)  # GGUFFormatError / ModelLoadError naming the file
    if is_quantized(info) and not allow_requantize:
        raise InvalidParameterError(
            f"{src.name} is already quantized ({info.quantization}); quantizing it to {qtype.name} is "
            "requantizing, which adds the errors of both: allow it with --allow-requantize (llama.cpp's "
            "allow_requantize), or quantize from an F16/BF16/F32 file", field="allow_requantize")
    failures: list[str] = []
    listener = _progress_listener(progress or (lambda _p: None), failures)
    try:
        with log_listener(listener):
            code = lib().llama_model_quantize(os.fsencode(src), os.fsencode(out),
                                              ctypes.byref(_params(qtype, allow_requantize, n_threads)))
        if code != 0:
            why = f": {failures[-1]}" if failures else ""
            raise QuantizeError(f"llama.cpp could not quantize {src} to {qtype.name} (code {code}){why}",
                                path=str(src))
        return check_gguf(out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
