"""Embeddings and reranking for every frontend: each text (or query/document pair) on the model's
engine thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ContextOverflowError
from ..runtime import Lease
from .cancel import Gone, until_gone
from .service import Service

__all__ = ["Embedded", "Reranked", "embed_texts", "rerank_documents"]


@dataclass(frozen=True)
class Embedded:
    """One vector per input and the number of tokens read."""

    vectors: list[np.ndarray]
    n_tokens: int


async def embed_texts(service: Service, lease: Lease, texts: Sequence[Any], *, truncate: bool, normalize: bool,
                      dimensions: int | None = None, gone: Gone | None = None) -> Embedded:
    """Embed each text (a string or token ids) in turn; the caller leaving stops the work."""
    embedder = lease.embedder()

    async def run() -> Embedded:
        vectors, total = [], 0
        for text in texts:
            item = await service.blocking(embedder.embed, text, truncate=truncate, normalize=normalize)
            vector = item.vector
            if dimensions is not None and dimensions < vector.shape[0]:
                vector = vector[:dimensions]
                norm = float(np.linalg.norm(vector))
                if normalize and norm > 0:
                    vector = vector / norm
            vectors.append(vector)
            total += item.n_tokens
        return Embedded(vectors, total)

    return await until_gone(gone, run())


@dataclass(frozen=True)
class Reranked:
    """Every document's relevance score (in the order given) and the number of tokens read."""

    scores: list[float]
    n_tokens: int

    def order(self, top_n: int | None = None) -> list[int]:
        """Document indices, most relevant first (ties: the earlier document first), ``top_n`` of them."""
        ranked = sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))
        return ranked if top_n is None else ranked[:top_n]


async def rerank_documents(service: Service, lease: Lease, query: str, documents: Sequence[str], *,
                           gone: Gone | None = None) -> Reranked:
    """Score each document for ``query`` with a reranker (rank pooling); the caller leaving stops the work."""
    embedder = lease.embedder()

    async def run() -> Reranked:
        scores, total = [], 0
        for i, document in enumerate(documents):
            try:
                ranked = await service.blocking(embedder.rank, query, document)
            except ContextOverflowError as exc:
                too_long = ContextOverflowError(f"documents.{i}: {exc}", n_prompt=exc.n_prompt, n_ctx=exc.n_ctx)
                too_long.field = f"documents.{i}"
                raise too_long from None
            scores.append(ranked.score)
            total += ranked.n_tokens
        return Reranked(scores, total)

    return await until_gone(gone, run())
