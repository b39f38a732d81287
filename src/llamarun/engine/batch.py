"""A batch of tokens for one llama_decode, spanning any number of sequences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ._handle import NativeHandle
from ._lib import lib, llama_cpp_error

__all__ = ["Batch"]


class Batch(NativeHandle):
    """Fixed-capacity token batch (``llama_batch``) that is filled and reused."""

    _kind = "batch"

    def __new__(cls, capacity: int, n_seq_max: int = 1) -> Any:
        if llama_cpp_error() is not None:  # no llama.cpp here: the NumPy backend's batch takes the same calls
            from ..numpy_engine.batch import Batch as NumpyBatch

            return NumpyBatch(capacity, n_seq_max)
        return super().__new__(cls)

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        if capacity < 1 or n_seq_max < 1:
            raise InvalidParameterError("a batch needs capacity >= 1 and n_seq_max >= 1")
        llama = lib()
        super().__init__(llama.llama_batch_init(capacity, 0, n_seq_max), llama.llama_batch_free)
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.n_tokens = 0

    @property
    def struct(self):  # noqa: ANN201 - the llama_batch struct passed to llama_decode
        batch = self.ptr
        batch.n_tokens = self.n_tokens
        return batch

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq_ids: int | Sequence[int], logits: bool) -> int:
        """Append one token; returns its index in the batch (for sampling)."""
        batch = self.ptr
        i = self.n_tokens
        if i >= self.capacity:
            raise InvalidParameterError(f"batch is full ({self.capacity} tokens)")
        ids = (seq_ids,) if isinstance(seq_ids, int) else tuple(seq_ids)
        if not 1 <= len(ids) <= self.n_seq_max:
            raise InvalidParameterError(f"a token belongs to 1..{self.n_seq_max} sequences, got {len(ids)}")
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = len(ids)
        seq_row = batch.seq_id[i]
        for j, seq in enumerate(ids):
            seq_row[j] = seq
        batch.logits[i] = logits
        self.n_tokens = i + 1
        return i

    def add_tokens(self, tokens: Sequence[int], start_pos: int, seq_id: int, *, logits_last: bool = True) -> int:
        """Append a run of one sequence's tokens; returns the index of the last one."""
        last = len(tokens) - 1
        index = -1
        for k, token in enumerate(tokens):
            index = self.add(token, start_pos + k, seq_id, logits_last and k == last)
        return index

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The filled part as arrays: tokens, positions, first sequence id, wants logits (for the NumPy backend)."""
        batch, n = self.ptr, self.n_tokens
        if n == 0:
            empty = np.zeros(0, dtype=np.int32)
            return empty, empty, empty, np.zeros(0, dtype=bool)
        tokens = np.ctypeslib.as_array(batch.token, shape=(n,)).copy()
        pos = np.ctypeslib.as_array(batch.pos, shape=(n,)).copy()
        wants = np.ctypeslib.as_array(batch.logits, shape=(n,)).astype(bool)
        seqs = np.array([batch.seq_id[i][0] for i in range(n)], dtype=np.int32)
        return tokens, pos, seqs, wants
