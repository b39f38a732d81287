"""Embeddings for every frontend: each text on the model's engine thread, cut to ``dimensions``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..runtime import Lease
from .cancel import Gone, until_gone
from .service import Service

__all__ = ["Embedded", "embed_texts"]


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
