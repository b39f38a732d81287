"""How much memory llama.cpp will allocate for a model at a context size and slot count.

The model follows llama.cpp's own allocations (llama-context.cpp, llama-kv-cache.cpp):

- weights: the tensor data (the ``model buffer``; mmapped on the CPU);
- KV cache: ``cells * sum over layers of n_head_kv * (head_dim_k * bytes_k + head_dim_v * bytes_v)``,
  the bytes per element of the cache types (``f16`` 2, ``q8_0`` 34/32, ``q4_0`` 18/32, ...),
  where cells is ``n_ctx`` padded to 256 and, without a unified KV cache, split into
  ``n_seq_max`` streams of ``pad(n_ctx / n_seq_max, 256)`` cells each;
- compute buffer: the worst-case graph of one ubatch.  Its peak is the larger of the
  output head (``n_ubatch`` rows of logits plus their input) and attention (with flash
  attention only the f16 mask; without it the f32 ``KQ`` scores of every head over
  the KV of one stream, plus the f32 mask);
- output buffer: one row of logits per sequence.

Calibrated on the CPU backend against the sizes llama.cpp logs (tests/hardware);
GPU splits follow the same formulas per device and are not calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..units import format_bytes
from ..gguf import ModelFacts

__all__ = ["KV_TYPE_BYTES", "MemoryEstimate", "context_cells", "estimate_memory", "format_bytes"]

_MIB = 1 << 20
_PAD = 256  # llama.cpp pads n_ctx (and each stream) to a multiple of 256 cells
_OVERHEAD = 1 * _MIB  # small tensors of the graph (positions, norms, ...)

# bytes per KV element by cache type (ggml block sizes)
KV_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
                 "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}


def _pad(n: int, to: int = _PAD) -> int:
    return (n + to - 1) // to * to


def context_cells(n_ctx: int, n_seq_max: int = 1, *, kv_unified: bool = False) -> tuple[int, int]:
    """(total KV cells, cells one sequence may use) exactly as llama.cpp sizes them."""
    total = _pad(max(n_ctx, 1))
    if kv_unified:
        return total, total
    per_seq = _pad(total // n_seq_max) if total // n_seq_max else _PAD
    return per_seq * n_seq_max, per_seq


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes llama.cpp will allocate, by kind and by device."""

    weights: int
    kv_cache: int
    compute: int
    output: int
    n_ctx: int  # total KV cells (after llama.cpp's padding)
    n_ctx_seq: int  # cells one sequence may use
    n_seq_max: int
    cpu_bytes: int  # host RAM
    gpu_bytes: int  # device memory (0 when nothing is offloaded)
    n_gpu_layers: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.output

    def describe(self) -> str:
        parts = (f"weights {format_bytes(self.weights)}", f"KV cache {format_bytes(self.kv_cache)}",
                 f"compute {format_bytes(self.compute)}", f"output {format_bytes(self.output)}")
        return f"{format_bytes(self.total)} ({' + '.join(parts)})"


def _compute_bytes(facts: ModelFacts, n_tokens: int, n_kv: int, flash_attn: bool) -> int:
    """Peak of llama.cpp's worst-case compute graph for one ubatch of ``n_tokens``."""
    f32 = 4
    output_head = f32 * n_tokens * (facts.n_vocab + facts.n_embd)
    hidden = f32 * n_tokens * (facts.n_embd + facts.n_ff)
    if flash_attn:
        attention = 2 * n_kv * n_tokens + hidden  # the f16 mask; no materialised scores
    else:
        scores = f32 * n_tokens * n_kv * (facts.n_head + 1)  # KQ per head + f32 mask
        attention = scores + f32 * n_kv * facts.n_embd_k_gqa
    return max(output_head, attention, hidden) + _OVERHEAD


def estimate_memory(
    facts: ModelFacts,
    *,
    n_ctx: int,
    n_seq_max: int = 1,
    n_batch: int = 512,
    n_ubatch: int = 512,
    kv_unified: bool = False,
    flash_attn: bool | None = None,
    n_gpu_layers: int = 0,
    type_k: str = "f16",
    type_v: str = "f16",
) -> MemoryEstimate:
    """Estimate a context like ``ContextOptions(n_ctx=..., n_seq_max=...)`` on this model.

    ``n_ctx`` is llama.cpp's n_ctx: all sequences together (0 = the training context).
    ``flash_attn=None`` (auto) counts as enabled, which is what llama.cpp picks on CPU.
    ``n_gpu_layers`` > n_layer also offloads the output head (like llama.cpp's -1/999).
    ``type_k``/``type_v``: the KV-cache element types (:data:`KV_TYPE_BYTES`).
    """
    if n_gpu_layers < 0:
        n_gpu_layers = facts.n_layer + 1
    cells, cells_seq = context_cells(n_ctx or facts.n_ctx_train, n_seq_max, kv_unified=kv_unified)
    bytes_k, bytes_v = KV_TYPE_BYTES[type_k], KV_TYPE_BYTES[type_v]
    per_cell_layer = [h * (facts.n_embd_head_k * bytes_k + facts.n_embd_head_v * bytes_v) for h in facts.n_head_kv]
    kv = int(cells * sum(per_cell_layer))
    n_tokens = min(n_ubatch, n_batch, cells)
    compute = _compute_bytes(facts, n_tokens, cells_seq, flash_attn is not False)
    output = 4 * facts.n_vocab * n_seq_max

    gpu_layers = min(n_gpu_layers, facts.n_layer)
    gpu_weights = sum(facts.layer_bytes[facts.n_layer - gpu_layers:]) if gpu_layers else 0
    if n_gpu_layers > facts.n_layer:
        gpu_weights += facts.output_bytes
    gpu_kv = int(cells * sum(per_cell_layer[facts.n_layer - gpu_layers:])) if gpu_layers else 0
    gpu_compute = compute if n_gpu_layers else 0
    # With everything offloaded the host keeps only the input rows and the logits copy.
    cpu_compute = compute if n_gpu_layers <= facts.n_layer else 4 * n_tokens * facts.n_embd + _OVERHEAD
    return MemoryEstimate(
        weights=facts.weights_bytes,
        kv_cache=kv,
        compute=max(compute, cpu_compute) if not n_gpu_layers else cpu_compute + gpu_compute,
        output=output,
        n_ctx=cells,
        n_ctx_seq=cells_seq,
        n_seq_max=n_seq_max,
        cpu_bytes=facts.weights_bytes - gpu_weights + kv - gpu_kv + cpu_compute + output,
        gpu_bytes=gpu_weights + gpu_kv + gpu_compute,
        n_gpu_layers=n_gpu_layers,
    )
