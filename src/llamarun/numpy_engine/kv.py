"""The KV cache of a NumPy context: one growing store of cells per sequence id.

A sequence's cells hold, for every layer, the RoPE-rotated key and the value of one token, plus
its position.  New cells are written past the committed ones while a batch runs and are
committed only when the whole forward pass has finished, so an aborted or failed decode
leaves the cache as it was.  Capacity follows llama.cpp's two layouts: a unified pool of
``n_ctx`` cells shared by every sequence, or ``n_ctx / n_seq_max`` cells per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import KVCacheFullError

__all__ = ["KVCache"]

_FIRST_CELLS = 64


@dataclass
class _Cells:
    keys: np.ndarray    # [n_layer, n_kv, capacity, head_dim]
    values: np.ndarray  # [n_layer, n_kv, capacity, head_dim]
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    used: int = 0
    pending: int = 0  # cells written by the batch in progress, not yet committed


class KVCache:
    """Cells per sequence (float32), bounded by ``n_ctx`` as llama.cpp bounds its KV memory."""

    def __init__(self, *, n_layer: int, n_kv: int, head_dim: int, n_ctx: int, n_seq_max: int, unified: bool) -> None:
        self._shape = (n_layer, n_kv, head_dim)
        self.n_ctx = n_ctx
        self.n_seq_max = n_seq_max
        self.unified = unified
        self.per_seq = n_ctx if unified else max(1, n_ctx // n_seq_max)
        self._seqs: dict[int, _Cells] = {}

    def _cells(self, seq_id: int) -> _Cells:
        cells = self._seqs.get(seq_id)
        if cells is None:
            n_layer, n_kv, hd = self._shape
            empty = np.zeros((n_layer, n_kv, 0, hd), dtype=np.float32)
            cells = self._seqs[seq_id] = _Cells(empty, empty.copy())
        return cells

    def used(self) -> int:
        return sum(c.used for c in self._seqs.values())

    # -- a batch -------------------------------------------------------------

    def reserve(self, seq_id: int, positions: np.ndarray) -> None:
        """Make room for ``len(positions)`` new cells of a sequence and record their positions."""
        if not 0 <= seq_id < self.n_seq_max:
            raise KVCacheFullError(f"sequence id {seq_id} is outside 0..{self.n_seq_max - 1}", code=1)
        cells = self._cells(seq_id)
        need = cells.used + len(positions)
        pending_elsewhere = sum(c.pending for s, c in self._seqs.items() if s != seq_id)
        if need > self.per_seq or (self.unified and self.used() + pending_elsewhere + len(positions) > self.n_ctx):
            raise KVCacheFullError("no KV cache slot for this batch: free sequences or use a larger context", code=1)
        capacity = cells.keys.shape[2]
        if need > capacity:
            self._grow(cells, min(self.per_seq, max(need, 2 * capacity, _FIRST_CELLS)))
        cells.positions[cells.used:need] = positions
        cells.pending = len(positions)

    def write(self, seq_id: int, layer: int, keys: np.ndarray, values: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write one layer's new ``[T, n_kv, hd]`` keys and values; returns that layer's
        ``[n_kv, L, hd]`` keys and values and the ``L`` positions, committed cells plus these."""
        cells = self._seqs[seq_id]
        start, end = cells.used, cells.used + cells.pending
        cells.keys[layer, :, start:end] = keys.transpose(1, 0, 2)
        cells.values[layer, :, start:end] = values.transpose(1, 0, 2)
        return cells.keys[layer, :, :end], cells.values[layer, :, :end], cells.positions[:end]

    def commit(self, seq_id: int, count: int) -> None:
        cells = self._seqs[seq_id]
        cells.used += count
        cells.pending = 0

    def discard_pending(self) -> None:
        for cells in self._seqs.values():
            cells.pending = 0

    def _grow(self, cells: _Cells, capacity: int) -> None:
        n_layer, n_kv, hd = self._shape
        keys = np.zeros((n_layer, n_kv, capacity, hd), dtype=np.float32)
        values = np.zeros_like(keys)
        positions = np.zeros(capacity, dtype=np.int32)
        keys[:, :, :cells.used] = cells.keys[:, :, :cells.used]
        values[:, :, :cells.used] = cells.values[:, :, :cells.used]
        positions[:cells.used] = cells.positions[:cells.used]
        cells.keys, cells.values, cells.positions = keys, values, positions

    # -- per sequence (llama_memory_seq_*) ---------------------------------------

    def seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        """Remove the cells with positions in ``[p0, p1)`` (negative: open end); seq -1: every sequence."""
        lo = max(p0, 0)
        hi = np.iinfo(np.int32).max if p1 < 0 else p1
        targets = list(self._seqs) if seq_id < 0 else [seq_id]
        for seq in targets:
            cells = self._seqs.get(seq)
            if cells is None or cells.used == 0:
                continue
            pos = cells.positions[:cells.used]
            keep = np.flatnonzero((pos < lo) | (pos >= hi))
            if len(keep) == cells.used:
                continue
            n = len(keep)
            cells.keys[:, :, :n] = cells.keys[:, :, keep]
            cells.values[:, :, :n] = cells.values[:, :, keep]
            cells.positions[:n] = pos[keep]
            cells.used = n
        return True

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Copy ``src``'s cells with positions in ``[p0, p1)`` into ``dst`` (after its own)."""
        if src == dst or src not in self._seqs:
            return
        source = self._seqs[src]
        pos = source.positions[:source.used]
        lo = max(p0, 0)
        hi = np.iinfo(np.int32).max if p1 < 0 else p1
        take = np.flatnonzero((pos >= lo) & (pos < hi))
        target = self._cells(dst)
        need = target.used + len(take)
        if need > self.per_seq or (self.unified and self.used() + len(take) > self.n_ctx):
            raise KVCacheFullError("no KV cells left to copy a sequence into", code=1)
        if need > target.keys.shape[2]:
            self._grow(target, min(self.per_seq, max(need, _FIRST_CELLS)))
        start = target.used
        target.keys[:, :, start:need] = source.keys[:, :, take]
        target.values[:, :, start:need] = source.values[:, :, take]
        target.positions[start:need] = pos[take]
        target.used = need

    def seq_pos_max(self, seq_id: int) -> int:
        cells = self._seqs.get(seq_id)
        if cells is None or cells.used == 0:
            return -1
        return int(cells.positions[:cells.used].max())

    def clear(self) -> None:
        self._seqs.clear()

    def sequences(self) -> Sequence[int]:
        return list(self._seqs)
