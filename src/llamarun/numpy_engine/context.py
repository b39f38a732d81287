"""A NumPy context: KV memory for one or more sequences, decode, logits and embeddings."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    ClosedHandleError,
    ContextCreationError,
    DecodeAbortedError,
    DecodeError,
    UnsupportedFeatureError,
)
from ..types import ContextOptions
from .forward import SequenceRows
from .kv import KVCache

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Context"]

_MAX_CTX = 1 << 22


def _blas_threads(n_threads: int | None) -> Callable[[], AbstractContextManager[Any]]:
    """What bounds numpy's BLAS to ``n_threads`` for one decode (threadpoolctl; process-wide while
    it lasts, so two NumPy models decoding at once on different threads share one setting)."""
    if not n_threads:
        return contextlib.nullcontext
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    return lambda: controller.limit(limits=n_threads, user_api="blas")


class Context:
    """KV memory plus the last decode's outputs; keeps its :class:`Model` alive.

    The same methods as the llama.cpp context, so the runtime drives either.  One thread
    uses a context; :meth:`abort` may be called from any thread and stops the decode in
    progress between two layers.
    """

    backend = "numpy"
    saves_sequence_state = False  # no per-sequence state API: the runtime's KV tiers stay off here

    def seq_state_get(self, seq_id: int) -> bytes:
        """Refused: this backend cannot save a sequence's KV state (sessions keep only their text)."""
        raise UnsupportedFeatureError("the NumPy backend cannot save KV state: use the llama.cpp backend")

    def seq_state_set(self, seq_id: int, data: bytes) -> bool:
        """Refused (False): nothing is restored; the prompt is computed."""
        return False

    def __init__(self, model: Model, options: ContextOptions | None = None) -> None:
        options = options or ContextOptions()
        config = model.config
        n_ctx = options.n_ctx or config.n_ctx_train
        if not 1 <= n_ctx <= _MAX_CTX or options.n_seq_max < 1 or options.n_batch < 1:
            raise ContextCreationError(f"the NumPy backend cannot create a context of {n_ctx} tokens "
                                       f"and {options.n_seq_max} sequences for {model.path!r}")
        if options.embeddings and model.pooling_type > 0:
            raise ContextCreationError(f"the NumPy backend does not implement the pooling (type "
                                       f"{model.pooling_type}) of {model.path!r}")
        self._forward = model.forward  # raises once the model is closed; kept alive with the context
        self.model = model
        self.options = options
        self.n_ctx = n_ctx
        self.n_batch = min(options.n_batch, n_ctx)
        self.n_ubatch = min(options.n_ubatch, self.n_batch)
        self.n_seq_max = options.n_seq_max
        self.n_threads = options.n_threads or 0  # 0: BLAS's own default
        self._threads = _blas_threads(options.n_threads)
        self._kv: KVCache | None = KVCache(
            n_layer=config.n_layer, n_kv=config.n_head_kv, head_dim=config.head_dim, n_ctx=n_ctx,
            n_seq_max=options.n_seq_max, unified=options.kv_unified)
        self._abort = threading.Event()
        self._logits = np.zeros((0, config.n_vocab), dtype=np.float32)
        self._hidden = np.zeros((0, config.n_embd), dtype=np.float32)
        self._row_of: dict[int, int] = {}
        self._last_row_of_seq: dict[int, int] = {}

    # -- handle ----------------------------------------------------------------

    @property
    def kv(self) -> KVCache:
        if self._kv is None:
            raise ClosedHandleError("this context is closed; create a new one")
        return self._kv

    @property
    def closed(self) -> bool:
        return self._kv is None

    def close(self) -> None:
        self._kv = None
        self._logits = self._logits[:0]

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- decode ----------------------------------------------------------------

    def synchronize(self) -> None:
        """Nothing to wait for: a NumPy decode is done when it returns."""

    def decode(self, batch: Any) -> None:
        """Run the model over ``batch`` (this backend's or llama.cpp's); raises a typed error on failure."""
        kv = self.kv
        tokens, positions, seqs, wants = (np.asarray(a) for a in batch.entries())
        n = len(tokens)
        if n == 0:
            return
        if n > self.n_batch:
            raise DecodeError(f"batch of {n} tokens exceeds n_batch {self.n_batch}", code=-1)
        n_vocab = self.model.config.n_vocab
        if tokens.min() < 0 or tokens.max() >= n_vocab:
            raise DecodeError(f"the batch has a token outside the vocabulary (0..{n_vocab - 1})", code=-1)
        groups = []
        for seq in dict.fromkeys(seqs.tolist()):
            rows = np.flatnonzero(seqs == seq)
            groups.append(SequenceRows(int(seq), rows, positions[rows].astype(np.int32)))
        output_rows = np.flatnonzero(wants)
        try:
            with self._threads():
                logits, hidden = self._forward.run(tokens.astype(np.int64), groups, kv, output_rows,
                                                        check_abort=self._check_abort)
        except BaseException:
            kv.discard_pending()
            raise
        self._logits, self._hidden = logits, hidden
        self._row_of = {int(i): r for r, i in enumerate(output_rows)}
        self._last_row_of_seq = {int(seqs[i]): r for r, i in enumerate(output_rows)}

    def _check_abort(self) -> None:
        if self._abort.is_set():
            self._abort.clear()
            raise DecodeAbortedError("decode aborted", code=2)

    def abort(self) -> None:
        """Interrupt the decode in progress (thread-safe); it raises DecodeAbortedError."""
        self._abort.set()

    def clear_abort(self) -> None:
        self._abort.clear()

    # -- outputs ---------------------------------------------------------------

    def _row(self, index: int) -> int:
        row = len(self._row_of) + index if index < 0 else self._row_of.get(index, -1)
        if row < 0:
            raise DecodeError(f"no logits for batch index {index}")
        return row

    def logits(self, index: int) -> np.ndarray:
        """Logits of the token at batch ``index`` (a copy, shape ``[n_vocab]``)."""
        return self.logits_view(index).copy()

    def logits_view(self, index: int) -> np.ndarray:
        """Logits of the token at batch ``index``; valid until the next decode."""
        self.kv  # raises once closed  # noqa: B018
        return self._logits[self._row(index)]

    def logits_rows(self, indices: Sequence[int]) -> np.ndarray:
        return self._logits[[self._row(i) for i in indices]]

    def logits_address(self, index: int) -> int:
        raise DecodeError("the NumPy backend's logits have no native address")

    @property
    def pooling_type(self) -> int:
        return self.model.pooling_type

    def embeddings(self, seq_id: int) -> np.ndarray:
        """The final hidden state of the sequence's last output token (no pooling: a chat model)."""
        if not self.options.embeddings:
            raise DecodeError("no embeddings: create the context with embeddings=True")
        row = self._last_row_of_seq.get(seq_id)
        if row is None:
            raise DecodeError(f"no embeddings for sequence {seq_id} in the last decode")
        return self._hidden[row].copy()

    # -- KV memory per sequence ----------------------------------------------------

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove positions [p0, p1) of a sequence (-1 = open end; seq -1 = all)."""
        return self.kv.seq_rm(seq_id, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.kv.seq_cp(src, dst, p0, p1)

    def seq_pos_max(self, seq_id: int) -> int:
        return self.kv.seq_pos_max(seq_id)

    def clear_memory(self) -> None:
        self.kv.clear()

    # -- sampling (the engine's sample_rows hands NumPy contexts here) ------------------

    def sample_rows(self, chains: Sequence[Any], indices: Sequence[int]) -> list[int | Exception]:
        """Each chain's next token from the logits at its batch index; a failure stays in its place."""
        picked: list[int | Exception] = []
        for chain, index in zip(chains, indices, strict=True):
            try:
                picked.append(chain.sample(self, index))
            except Exception as exc:  # noqa: BLE001 - returned in its place
                picked.append(exc)
        return picked
