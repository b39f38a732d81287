"""Embeddings of a loaded model, computed on its engine thread on a spare context.

The generation context of a :class:`Runtime` keeps its KV cells for the
requests it serves, so embeddings use a second, small context created from
the same model (lazily, on the engine thread, through :meth:`Runtime.call`).
One text is decoded per call, so generation steps interleave between texts.

Pooling: when the GGUF declares a pooling type (embedding models such as
nomic-embed or bge) llama.cpp pools the sequence itself; for decoder-only chat
models (no pooling in the file, e.g. SmolLM2) the vector is the hidden state of
the last token, which has attended to the whole text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    ClosedHandleError,
    ContextCreationError,
    ContextOverflowError,
    DecodeError,
    EngineDeadError,
    InvalidParameterError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from ..engine import Batch, Context, Model, ModelInfo
    from .runtime import Runtime

__all__ = ["POOLING_RANK", "Embedder", "Embedding", "Ranked", "is_embedding_model", "is_reranker", "pooling_type"]

logger = logging.getLogger(__name__)

_MAX_EMBED_CTX = 8192
_CHUNK = 512
POOLING_RANK = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK: a reranker, whose output is a score per text


@dataclass(frozen=True)
class Embedding:
    """One text's vector and how many tokens it took (after truncation)."""

    vector: np.ndarray
    n_tokens: int
    truncated: bool = False


@dataclass(frozen=True)
class Ranked:
    """A reranker's score of one (query, document) pair and how many tokens the pair took."""

    score: float
    n_tokens: int


def pooling_type(metadata: Mapping[str, Any], architecture: str) -> int:
    """The pooling type a GGUF's key/values declare (0 when none or unreadable)."""
    value = metadata.get(f"{architecture}.pooling_type")
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _pooling(info: ModelInfo) -> int:
    return pooling_type(info.metadata, info.architecture)


def is_embedding_model(info: ModelInfo) -> bool:
    """True when the GGUF asks llama.cpp to pool its output (an embedding model such as
    nomic-embed or bge, or a reranker, which cannot generate text); the whole input must then fit
    one micro-batch."""
    return _pooling(info) > 0


def is_reranker(info: ModelInfo) -> bool:
    """True for a reranker (rank pooling, e.g. bge-reranker): it scores texts and has no embeddings."""
    return _pooling(info) == POOLING_RANK


class Embedder:
    """Embeds texts with ``runtime``'s model; ``n_ctx`` caps the tokens of one text.

    Thread-safe in the sense that every native object is created, used and freed
    on the runtime's engine thread.
    """

    def __init__(self, runtime: Runtime, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        self.runtime = runtime
        self.n_ctx = max(16, min(n_ctx, _MAX_EMBED_CTX, runtime.info.n_ctx_train or _MAX_EMBED_CTX))
        self.n_threads = n_threads
        self._ctx: Context | None = None
        self._batch: Batch | None = None
        self._failed: str | None = None

    # -- public (any thread except the engine thread) ---------------------------

    def embed(self, text: str | Sequence[int], *, truncate: bool = True, normalize: bool = True) -> Embedding:
        """The vector of one text (or token ids); over-long input is cut at the end when
        ``truncate``, else a :class:`ContextOverflowError`."""
        return self.runtime.call(lambda model: self._embed(model, text, truncate, normalize))

    def rank(self, query: str, document: str) -> Ranked:
        """A reranker's relevance score of ``document`` for ``query`` (higher: more relevant), from
        the pair laid out as llama-server lays it; a pair longer than the context is refused."""
        return self.runtime.call(lambda model: self._rank(model, query, document))

    def close(self) -> None:
        """Free the spare context (on the engine thread); harmless if never used."""
        if self._ctx is None:
            return
        try:
            self.runtime.call(lambda _model: self._free())
        except (EngineDeadError, ClosedHandleError, RuntimeError):  # the engine is gone: finalizers free it
            logger.debug("embedding context of %s freed by its finalizer", self.runtime.name)

    # -- engine thread ---------------------------------------------------------

    def _free(self) -> None:
        for handle in (self._batch, self._ctx):
            if handle is not None:
                handle.close()
        self._batch = self._ctx = None

    def _context(self, model: Model, *, rank: bool = False) -> Context:
        if rank and not is_reranker(model.info):
            raise UnsupportedFeatureError(
                f"model {self.runtime.name!r} cannot rerank: its GGUF declares no rank pooling (use a reranker "
                "such as bge-reranker)", field="model")
        if is_reranker(model.info) and not rank:
            raise UnsupportedFeatureError(
                f"model {self.runtime.name!r} is a reranker (rank pooling): it scores texts and "
                "cannot produce embeddings", field="model")
        if self._ctx is not None:
            return self._ctx
        if self._failed:
            raise UnsupportedFeatureError(self._failed, field="model")
        from ..engine import Batch, Context
        from ..types import ContextOptions

        chunk = self.n_ctx if is_embedding_model(model.info) else min(_CHUNK, self.n_ctx)
        options = ContextOptions(n_ctx=self.n_ctx, n_batch=chunk, n_ubatch=chunk, n_seq_max=1,
                                 n_threads=self.n_threads, embeddings=True)
        try:
            self._ctx = Context(model, options)
        except ContextCreationError as exc:
            self._failed = f"model {self.runtime.name!r} cannot produce embeddings: {exc}"
            raise UnsupportedFeatureError(self._failed, field="model") from exc
        self._batch = Batch(self._ctx.n_batch, 1)
        return self._ctx

    def _tokens(self, model: Model, text: str | Sequence[int], truncate: bool) -> tuple[list[int], bool]:
        if isinstance(text, str):
            tokens = model.tokenize(text, add_special=True, parse_special=False)
        else:
            tokens = list(text)
            for token in tokens:
                model.vocab.check_token(token)
        if not tokens:
            raise InvalidParameterError("cannot embed an empty input", field="input")
        if len(tokens) <= self.n_ctx:
            return tokens, False
        if not truncate:
            raise ContextOverflowError(
                f"input has {len(tokens)} tokens but embeddings take at most {self.n_ctx}: "
                "shorten it or set truncate", n_prompt=len(tokens), n_ctx=self.n_ctx)
        return tokens[: self.n_ctx], True

    def _rank(self, model: Model, query: str, document: str) -> Ranked:
        ctx = self._context(model, rank=True)
        tokens = model.vocab.rank_pair(query, document, model.chat_template("rerank"))
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(
                f"query and document take {len(tokens)} tokens but the reranker takes at most {self.n_ctx}: "
                "shorten them", n_prompt=len(tokens), n_ctx=self.n_ctx)
        return Ranked(float(self._pooled(model, ctx, tokens)[0]), len(tokens))

    def _pooled(self, model: Model, ctx: Context, tokens: list[int]) -> np.ndarray:
        """The pooled output of ``tokens`` as one sequence (decoded in micro-batches, memory cleared after)."""
        batch = self._batch
        assert batch is not None
        ctx.clear_memory()
        step = ctx.n_batch
        try:
            for start in range(0, len(tokens), step):
                part = tokens[start:start + step]
                batch.clear()
                for offset, token in enumerate(part):  # every token an output, as llama.cpp wants
                    batch.add(token, start + offset, 0, True)
                ctx.decode(batch)
            return ctx.embeddings(0).astype(np.float32)
        except DecodeError as exc:
            raise UnsupportedFeatureError(
                f"model {self.runtime.name!r} failed to produce embeddings: {exc}", field="model") from exc
        finally:
            ctx.clear_memory()

    def _embed(self, model: Model, text: str | Sequence[int], truncate: bool, normalize: bool) -> Embedding:
        ctx = self._context(model)
        tokens, truncated = self._tokens(model, text, truncate)
        vector = self._pooled(model, ctx, tokens)
        if normalize:
            norm = float(np.linalg.norm(vector))
            if norm > 0 and math.isfinite(norm):
                vector = vector / norm
        return Embedding(vector, len(tokens), truncated)
