"""A batch of tokens for one NumPy decode, spanning any number of sequences (llama_batch's role)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ClosedHandleError, InvalidParameterError

__all__ = ["Batch", "BatchEntries"]

BatchEntries = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # tokens, positions, seq ids, wants logits


class Batch:
    """Fixed-capacity token batch that is filled and reused (the same methods as the llama.cpp one)."""

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        if capacity < 1 or n_seq_max < 1:
            raise InvalidParameterError("a batch needs capacity >= 1 and n_seq_max >= 1")
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.n_tokens = 0
        self._tokens = np.zeros(capacity, dtype=np.int32)
        self._pos = np.zeros(capacity, dtype=np.int32)
        self._seq = np.zeros(capacity, dtype=np.int32)
        self._logits = np.zeros(capacity, dtype=bool)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedHandleError("this batch is closed; create a new one")

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq_ids: int | Sequence[int], logits: bool) -> int:
        """Append one token; returns its index in the batch (for sampling)."""
        self._check_open()
        i = self.n_tokens
        if i >= self.capacity:
            raise InvalidParameterError(f"batch is full ({self.capacity} tokens)")
        ids = (seq_ids,) if isinstance(seq_ids, int) else tuple(seq_ids)
        if len(ids) != 1:
            raise InvalidParameterError(f"a token of the NumPy backend belongs to exactly one sequence, got {len(ids)}")
        self._tokens[i], self._pos[i], self._seq[i], self._logits[i] = token, pos, ids[0], logits
        self.n_tokens = i + 1
        return i

    def add_tokens(self, tokens: Sequence[int], start_pos: int, seq_id: int, *, logits_last: bool = True) -> int:
        """Append a run of one sequence's tokens; returns the index of the last one."""
        self._check_open()
        n, i = len(tokens), self.n_tokens
        if n == 0:
            return -1
        if i + n > self.capacity:
            raise InvalidParameterError(f"batch is full ({self.capacity} tokens)")
        self._tokens[i:i + n] = tokens
        self._pos[i:i + n] = np.arange(start_pos, start_pos + n, dtype=np.int32)
        self._seq[i:i + n] = seq_id
        self._logits[i:i + n] = False
        self._logits[i + n - 1] = logits_last
        self.n_tokens = i + n
        return i + n - 1

    def entries(self) -> BatchEntries:
        """The filled part: tokens, positions, sequence ids and which rows want logits (views)."""
        n = self.n_tokens
        return self._tokens[:n], self._pos[:n], self._seq[:n], self._logits[:n]

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
