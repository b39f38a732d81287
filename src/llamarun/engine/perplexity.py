"""Perplexity of a model over a token sequence, as llama.cpp's ``llama-perplexity`` computes it.

The tokens are cut into chunks of ``n_ctx``; each chunk is decoded from an empty cache and
only the second half of its positions is scored (each has at least ``n_ctx / 2`` tokens of
context), so the number does not depend on how little context the first tokens had.
Perplexity is ``exp(mean negative log-likelihood)`` of the scored tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from ..types import ContextOptions
from .batch import Batch
from .context import Context
from .model import Model

__all__ = ["Perplexity", "perplexity"]


@dataclass(frozen=True)
class Perplexity:
    """The result: perplexity, the tokens it scored and the chunks it decoded."""

    value: float
    scored_tokens: int
    chunks: int
    n_ctx: int


def _chunk_nll(ctx: Context, batch: Batch, chunk: Sequence[int]) -> tuple[float, int]:
    """Sum of -log p(next token) over the second half of ``chunk``, and how many were scored."""
    first = len(chunk) // 2
    ctx.clear_memory()
    batch.clear()
    for pos, token in enumerate(chunk):
        batch.add(token, pos, 0, pos >= first and pos < len(chunk) - 1)
    ctx.decode(batch)
    rows = ctx.logits_rows(range(first, len(chunk) - 1)).astype(np.float64)
    peak = rows.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    targets = np.asarray(chunk[first + 1:], dtype=np.int64)
    picked = rows[np.arange(len(targets)), targets]
    return float((log_z - picked).sum()), len(targets)


def perplexity(model: Model, tokens: Sequence[int], *, n_ctx: int = 256, n_threads: int | None = None,
               max_chunks: int = 0) -> Perplexity:
    """Perplexity of ``model`` on ``tokens`` in chunks of ``n_ctx`` (``max_chunks`` 0: all whole chunks)."""
    if n_ctx < 16:
        raise InvalidParameterError("n_ctx must be at least 16 for a perplexity", field="n_ctx")
    n_chunks = len(tokens) // n_ctx
    if max_chunks:
        n_chunks = min(n_chunks, max_chunks)
    if n_chunks < 1:
        raise InvalidParameterError(f"the text has {len(tokens)} tokens, fewer than one chunk of {n_ctx}",
                                    field="text")
    options = ContextOptions(n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=n_threads)
    total, count = 0.0, 0
    with Context(model, options) as ctx, Batch(n_ctx) as batch:
        for i in range(n_chunks):
            nll, n = _chunk_nll(ctx, batch, tokens[i * n_ctx:(i + 1) * n_ctx])
            total += nll
            count += n
    return Perplexity(math.exp(total / count), count, n_chunks, n_ctx)
