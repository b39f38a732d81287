"""Which weight format runs fastest on this CPU, and what converting a stored model would cost.

llama.cpp's CPU backend *repacks* some formats at load into interleaved blocks its matrix
kernels read fastest (``REPACK`` among the build's features): Q4_0 (and IQ4_NL, Q4_K) for
AVX2/AVX-512 on x86 and for NEON dot-product/i8mm on ARM.  The issue that asked for this
measured SmolLM2-135M's prefill at 1063 tok/s in Q4_0 against 378 in Q4_1 on this project's
2-core AVX-512 host; ``benchmarks/bench_quant.py`` measures it again (interleaved rounds).
Generation is memory-bound and differs less.  Without the repacking kernels the K-quants are
the usual choice (Q4_K_M: good quality for its size).

The quality cost is never guessed: it is the perplexity llamarun measured on its sample text
(:mod:`llamarun.quality`) when it made the conversion, which the manifest keeps; for a
conversion not made yet the advice says how to measure it.

It sits above ``hardware`` and ``store``, which must not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hardware import HardwareProfile
    from .store import ModelStore, StoredModel

__all__ = ["ConversionAdvice", "conversion_advice", "fastest_quantization"]

_REPACKED_X86 = ("AVX2", "AVX512")
_REPACKED_ARM = ("DOTPROD", "I8MM", "NEON")


def fastest_quantization(hardware: HardwareProfile) -> tuple[str, str]:
    """(type, why) of the 4-bit weight format that runs fastest on this CPU."""
    features = set(hardware.cpu.features) | set(hardware.build.features if hardware.build else ())
    repack = hardware.build is None or "REPACK" in hardware.build.features
    if repack and features & set(_REPACKED_X86):
        simd = "AVX-512" if "AVX512" in features else "AVX2"
        return "Q4_0", f"llama.cpp repacks Q4_0 for its {simd} kernels on this CPU"
    if repack and features & set(_REPACKED_ARM):
        return "Q4_0", "llama.cpp repacks Q4_0 for its NEON dot-product kernels on this CPU"
    return "Q4_K_M", "no repacking kernels for this CPU: Q4_K_M gives the best quality for its size"


@dataclass(frozen=True)
class ConversionAdvice:
    """What to tell the user about ``model``: convert it (and the command), or nothing to do."""

    model: str
    current: str
    fastest: str
    why: str
    command: str  # "" when the model already is in the fastest format
    converted: str  # the stored conversion, "" when none exists yet
    quality: str  # the measured cost, or how to measure it

    @property
    def worth_converting(self) -> bool:
        return bool(self.command)

    def lines(self) -> list[str]:
        if not self.worth_converting:
            return [f"{self.model} is {self.current}, the fastest weight format here ({self.why})"]
        out = [f"{self.fastest} runs fastest here ({self.why}); {self.model} is {self.current}"]
        if self.converted:
            out.append(f"already converted: {self.converted} ({self.quality})")
        else:
            out += [f"convert: {self.command}", f"quality cost: {self.quality}"]
        return out


def _stored_conversion(store: ModelStore, model: StoredModel, qtype: str) -> StoredModel | None:
    for other in store.list():
        origin = other.manifest.get("quantized_from")
        if isinstance(origin, dict) and origin.get("digest") == model.digest and origin.get("type") == qtype:
            return other
    return None


def conversion_advice(model: StoredModel, hardware: HardwareProfile, store: ModelStore) -> ConversionAdvice:
    """Whether converting ``model`` to this CPU's fastest format is worth it, and what it costs."""
    from .engine.quantize import is_quantized
    from .gguf import check_gguf

    fastest, why = fastest_quantization(hardware)
    current = str(model.facts.get("quantization") or "unknown").upper()
    if current == fastest:
        return ConversionAdvice(model.name, current, fastest, why, "", "", "")
    requant = " --allow-requantize" if is_quantized(check_gguf(model.path)) else ""
    command = f"llamarun quantize {model.name} --type {fastest}{requant}"
    done = _stored_conversion(store, model, fastest)
    if done is not None:
        origin = done.manifest["quantized_from"]
        before, after = origin.get("perplexity_before"), origin.get("perplexity_after")
        quality = (f"perplexity {before:.2f} -> {after:.2f} ({after / before - 1:+.1%}), measured by llamarun"
                   if isinstance(before, float) and isinstance(after, float) else "not measured")
        return ConversionAdvice(model.name, current, fastest, why, command, done.name, quality)
    note = (" (from an already quantized file: requantizing adds the errors of both)" if requant else "")
    quality = f"`{command}` measures the perplexity of both on llamarun's sample text and prints it{note}"
    return ConversionAdvice(model.name, current, fastest, why, command, "", quality)
