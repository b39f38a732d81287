"""The llama forward pass in NumPy: RMSNorm, RoPE, grouped-query attention over a KV cache, SwiGLU.

One call runs a batch of tokens from any number of sequences: every projection is one matmul
over all the batch's rows; attention runs once per sequence, over all its heads and query
positions at once (no Python loop over heads or positions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .kv import KVCache
from .numerics import round_f16
from .weights import LlamaConfig, ModelWeights

__all__ = ["Forward", "SequenceRows"]


@dataclass(frozen=True)
class SequenceRows:
    """The batch rows of one sequence (in batch order) and their positions."""

    seq_id: int
    rows: np.ndarray       # int64 indices into the batch
    positions: np.ndarray  # int32, one per row


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    scale = 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + eps)
    return (x * scale) * weight


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class Forward:
    """The model's math; holds the weights and the RoPE frequencies, no per-request state."""

    def __init__(self, config: LlamaConfig, weights: ModelWeights, *, emulate: bool = True) -> None:
        self.config = config
        self._kv_rounding = round_f16 if emulate else None  # llama.cpp's KV cache and attention are f16
        self.weights = weights
        c = config
        exponents = np.arange(0, c.rope_dim, 2, dtype=np.float64) / c.rope_dim
        inv_freq = 1.0 / (c.rope_base ** exponents)
        if weights.rope_freqs is not None:
            inv_freq = inv_freq / weights.rope_freqs.astype(np.float64)
        self._inv_freq = inv_freq / c.rope_linear_scale
        self._scale = np.float32(1.0 / np.sqrt(c.head_dim))

    # -- pieces --------------------------------------------------------------

    def rope(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rotate adjacent pairs (llama.cpp's "normal" RoPE; GGUF stores Q/K permuted for it) in place.

        ``x`` is ``[tokens, heads, head_dim]``; the first ``rope_dim`` features rotate.
        """
        angles = positions.astype(np.float64)[:, None] * self._inv_freq[None, :]
        cos = np.cos(angles).astype(np.float32)[:, None, :]
        sin = np.sin(angles).astype(np.float32)[:, None, :]
        n = self.config.rope_dim
        even, odd = x[..., 0:n:2].copy(), x[..., 1:n:2].copy()
        x[..., 0:n:2] = even * cos - odd * sin
        x[..., 1:n:2] = even * sin + odd * cos
        return x

    def attend(self, q: np.ndarray, keys: np.ndarray, values: np.ndarray, key_pos: np.ndarray,
               query_pos: np.ndarray) -> np.ndarray:
        """Causal GQA for one sequence: ``q [T, n_head, hd]``, cache ``[n_kv, L, hd]`` -> ``[T, n_head hd]``."""
        c = self.config
        group = c.n_head // c.n_head_kv
        t = q.shape[0]
        qg = q.reshape(t, c.n_head_kv, group, c.head_dim).transpose(1, 2, 0, 3)  # [kv, g, T, hd]
        scores = np.matmul(qg, keys[:, None].transpose(0, 1, 3, 2)) * self._scale  # [kv, g, T, L]
        masked = key_pos[None, :] > query_pos[:, None]  # [T, L]
        if masked.any():
            scores = np.where(masked, np.float32(-np.inf), scores)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        if self._kv_rounding is not None:  # llama.cpp multiplies the f16 values by f16 weights
            scores = self._kv_rounding(scores)
        out = np.matmul(scores, values[:, None])  # [kv, g, T, hd]
        return out.transpose(2, 0, 1, 3).reshape(t, c.n_head * c.head_dim)

    # -- a whole batch ----------------------------------------------------------

    def run(self, tokens: np.ndarray, groups: Sequence[SequenceRows], cache: KVCache,
            output_rows: np.ndarray, *, check_abort: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
        """Run the batch; returns (logits of ``output_rows`` ``[n, n_vocab]``, their final hidden states).

        Each layer's keys and values go into ``cache`` past each sequence's committed cells as it
        runs, and are committed once every layer has run: ``check_abort`` is called between layers
        and may raise, which leaves the cache as it was.
        """
        c, w = self.config, self.weights
        q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        x = w.token_embd[tokens]  # [T, n_embd] (a copy)
        positions = np.empty(len(tokens), dtype=np.int32)
        for g in groups:
            positions[g.rows] = g.positions
            cache.reserve(g.seq_id, g.positions)  # KVCacheFullError before any work
        for index, layer in enumerate(w.layers):
            check_abort()
            h = rms_norm(x, layer.attn_norm, c.rms_eps)
            qkv = layer.qkv(h)
            q = self.rope(qkv[:, :q_dim].reshape(-1, c.n_head, c.head_dim), positions)
            k = self.rope(qkv[:, q_dim:q_dim + kv_dim].reshape(-1, c.n_head_kv, c.head_dim), positions)
            v = qkv[:, q_dim + kv_dim:].reshape(-1, c.n_head_kv, c.head_dim)
            if self._kv_rounding is not None:
                q, k, v = self._kv_rounding(q), self._kv_rounding(k), self._kv_rounding(v)
            attn = np.empty((len(tokens), q_dim), dtype=np.float32)
            for g in groups:
                keys, values, key_pos = cache.write(g.seq_id, index, k[g.rows], v[g.rows])
                attn[g.rows] = self.attend(q[g.rows], keys, values, key_pos, g.positions)
            x += layer.out(attn)
            h = rms_norm(x, layer.ffn_norm, c.rms_eps)
            gate_up = layer.gate_up(h)
            x += layer.down(silu(gate_up[:, :c.n_ff]) * gate_up[:, c.n_ff:])
        for g in groups:
            cache.commit(g.seq_id, len(g.rows))
        final = rms_norm(x[output_rows], w.output_norm, c.rms_eps)
        return w.output(final), final
