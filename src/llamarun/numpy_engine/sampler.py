"""Sampler chains in NumPy with llama.cpp's stages, definitions and order.

logit bias -> repetition penalties -> greedy, or top-k -> typical -> top-p -> min-p ->
temperature -> a seeded draw.  Top-p, typical and min-p see the logits at unit temperature,
as in llama.cpp's chain; random numbers come from NumPy's PCG64 (llama.cpp uses mt19937, so
a seed gives a reproducible sequence here, not llama.cpp's).  Mirostat and grammars are
refused with a typed error rather than ignored.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClosedHandleError, UnsupportedFeatureError
from ..types import SamplingParams

if TYPE_CHECKING:
    from .model import Model

__all__ = ["SamplerChain", "sample_rows"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max())
    return p / p.sum()


class SamplerChain:
    """One sequence's sampler (the engine SamplerChain's methods)."""

    def __init__(self, model: Model, params: SamplingParams | None = None) -> None:
        p = self.params = params or SamplingParams()
        if p.grammar:
            raise UnsupportedFeatureError("the NumPy backend has no grammar sampler; use the llama.cpp backend",
                                          field="grammar")
        if p.mirostat:
            raise UnsupportedFeatureError("the NumPy backend does not implement mirostat sampling", field="mirostat")
        n_vocab = model.vocab.n_tokens
        for token in p.logit_bias:
            model.vocab.check_token(token)
        self._bias_ids = np.array(list(p.logit_bias), dtype=np.int64)
        self._bias = np.array(list(p.logit_bias.values()), dtype=np.float64)
        last_n = model.info.n_ctx_train if p.repeat_last_n == -1 else p.repeat_last_n
        self._penalize = last_n > 0 and (p.repeat_penalty != 1.0 or bool(p.presence_penalty or p.frequency_penalty))
        self._recent: deque[int] = deque(maxlen=max(1, last_n))
        seed = None if p.seed is None or p.seed < 0 else p.seed
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._n_vocab = n_vocab
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def draws_whole_vocabulary(self) -> bool:
        return False

    def _whole_vocabulary_draw(self) -> None:
        return None

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> SamplerChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedHandleError("this sampler chain is closed; create a new one")

    # -- sampling ----------------------------------------------------------------

    def sample(self, context: Any, index: int = -1) -> int:
        """Pick the next token from the logits at batch ``index`` and accept it."""
        self._check_open()
        token = self.pick(context.logits_view(index))
        self.accept(token)
        return token

    def pick(self, row: np.ndarray) -> int:
        """The chain applied to one row of logits (without accepting the token)."""
        p = self.params
        logits = row.astype(np.float64)
        if len(self._bias_ids):
            logits[self._bias_ids] += self._bias
        if self._penalize and self._recent:
            self._apply_penalties(logits)
        if p.is_greedy:
            return int(np.argmax(logits))
        ids = np.arange(self._n_vocab)
        if 0 < p.top_k < self._n_vocab:
            keep = np.argpartition(-logits, p.top_k - 1)[:p.top_k]
            ids, logits = keep, logits[keep]
        order = np.argsort(-logits, kind="stable")
        ids, logits = ids[order], logits[order]
        if p.typical_p < 1.0:
            ids, logits = _typical(ids, logits, p.typical_p)
        if p.top_p < 1.0:
            cum = np.cumsum(_softmax(logits))
            n = int(np.searchsorted(cum, p.top_p)) + 1
            ids, logits = ids[:n], logits[:n]
        if p.min_p > 0.0:
            n = max(1, int(np.count_nonzero(logits >= logits[0] + np.log(p.min_p))))
            ids, logits = ids[:n], logits[:n]
        probs = _softmax(logits / p.temperature)
        draw = self._rng.random()
        at = int(np.searchsorted(np.cumsum(probs), draw * probs.sum(), side="right"))
        return int(ids[min(at, len(ids) - 1)])

    def _apply_penalties(self, logits: np.ndarray) -> None:
        p = self.params
        counts = Counter(self._recent)
        tokens = np.fromiter(counts.keys(), dtype=np.int64)
        n = np.fromiter(counts.values(), dtype=np.float64)
        values = logits[tokens]
        values = np.where(values <= 0, values * p.repeat_penalty, values / p.repeat_penalty)
        logits[tokens] = values - n * p.frequency_penalty - p.presence_penalty

    def accept(self, token: int) -> None:
        """Feed a token the chain did not pick (for the penalties)."""
        self._check_open()
        if self._penalize:
            self._recent.append(int(token))

    def reset(self) -> None:
        self._recent.clear()
        self._rng = np.random.Generator(np.random.PCG64(self._seed))


def _typical(ids: np.ndarray, logits: np.ndarray, typical_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Locally typical sampling: the tokens whose surprise is closest to the entropy, up to ``typical_p``."""
    probs = _softmax(logits)
    log_probs = np.log(np.maximum(probs, 1e-300))
    entropy = -float(np.sum(probs * log_probs))
    order = np.argsort(np.abs(-log_probs - entropy), kind="stable")
    cum = np.cumsum(probs[order])
    n = int(np.searchsorted(cum, typical_p, side="right")) + 1
    keep = order[:min(n, len(order))]
    return ids[keep], logits[keep]


def sample_rows(chains: Any, context: Any, indices: Any, buffer: Any = None) -> list[int | Exception]:
    """Each chain's next token from the logits at the matching batch index (a failure in its place)."""
    return context.sample_rows(chains, indices)
