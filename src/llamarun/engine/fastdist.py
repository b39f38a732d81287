"""Sampling from the logits with numpy: llama.cpp's top-p, min-p, temperature and dist stages.

llama.cpp's samplers work on an array of the whole vocabulary, and without a
top-k first its top-p sorts all of it: for SmolLM2's 49k vocabulary 5.7 ms per
token with ``top_p=0.95`` and 0.6 ms for plain temperature sampling, on the
engine thread while the model's compute threads wait.  OpenAI clients send
exactly these (no top-k).  Here the same stages, in llama.cpp's order and with
its definitions (top-p and min-p on unit temperature, then the temperature),
run on numpy arrays: the whole vocabulary is only exponentiated and summed;
sorting is limited to the tokens a cut can keep.  With a top-k, llama.cpp's own
chain is as fast and is used instead.  Random numbers come from numpy's PCG64,
seeded per request.

Requests that draw from the whole vocabulary (no cut, no bias) are the common
case (OpenAI clients at a temperature), and right after a decode every numpy
call and view is slow: the model's weights have pushed everything else out of
the caches.  Those draws go to a small C module (``_fastdraw``, built with the
package when a C compiler is at hand) that reads llama.cpp's logits buffer in
place: in the server, 0.09 ms per token at one stream instead of 0.25-0.3 ms,
and 0.3 ms per step at eight instead of 0.75 ms.
Without it they are drawn together, one numpy pass per stage over all their
rows (:func:`draw_rows`).  Both take the same steps in the same precision, and
each row draws exactly what it would draw alone.
"""

from __future__ import annotations

import numpy as np

try:
    from ._fastdraw import draw as _native_draw
except ImportError:  # built without a C compiler: numpy draws
    _native_draw = None

__all__ = ["DrawBuffer", "FastDist", "draw_rows", "native_draw"]


def native_draw() -> bool:
    """True when whole-vocabulary draws run in C (:meth:`FastDist.draw_at`)."""
    return _native_draw is not None

_UNIFORMS = 64  # random numbers taken from the generator at a time
_BLOCK = 256  # the cumulative sum for a draw over the whole vocabulary goes block by block


class FastDist:
    """Seeded sampler over a logits vector: top-p and min-p on unit temperature, then temperature."""

    def __init__(self, *, temperature: float, top_p: float = 1.0, min_p: float = 0.0,
                 seed: int | None = None, logit_bias: dict[int, float] | None = None) -> None:
        if temperature <= 0:
            raise ValueError("FastDist samples; greedy decoding takes the argmax instead")
        self.temperature = temperature
        self.top_p = top_p
        self.min_p = min_p
        self.seed = seed
        self._bias_ids = np.array(list((logit_bias or {}).keys()), dtype=np.int64)
        self._bias_values = np.array(list((logit_bias or {}).values()), dtype=np.float32)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._uniforms: list[float] = []  # the generator's next numbers, last first
        self._buffer: DrawBuffer | None = None

    @property
    def whole_vocabulary(self) -> bool:
        """True when every token may be drawn as it is (no top-p, min-p or bias): :func:`draw_rows` applies."""
        return self.top_p >= 1.0 and self.min_p <= 0.0 and not len(self._bias_ids)

    def uniform(self) -> float:
        """The next number of this sampler's generator (one per draw).

        Taken 64 at a time (the same numbers in the same order as one by one):
        one call into numpy right after a decode costs more than the draw.
        """
        if not self._uniforms:
            self._uniforms = self._rng.random(_UNIFORMS).tolist()[::-1]
        return self._uniforms.pop()

    def draw_at(self, address: int, n: int) -> int:
        """Draw from the whole vocabulary: the ``n`` float32 logits at ``address`` (needs :func:`native_draw`)."""
        if _native_draw is None:
            raise RuntimeError("llamarun was installed without its C draw; use sample()")
        return _native_draw(address, n, 1.0 / self.temperature, self.uniform())  # C caps the scale at 1e30

    def reset(self) -> None:
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._uniforms = []

    def distribution(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids that may be drawn and their probabilities (for tests and logprobs)."""
        logits = self._biased(logits)
        ids = self._candidates(logits)
        if ids is None:
            ids = np.arange(len(logits))
        weights = _weights(logits[ids], self.temperature)
        return ids, weights / weights.sum()

    def sample(self, logits: np.ndarray) -> int:
        logits = self._biased(logits)
        ids = self._candidates(logits)
        if ids is None:
            if self._buffer is None:
                self._buffer = DrawBuffer(len(logits))
            return draw_rows(logits[None, :], [self.temperature], [self.uniform()], self._buffer)[0]
        cumulative = np.cumsum(_weights(logits[ids], self.temperature))
        pick = int(np.searchsorted(cumulative, self.uniform() * cumulative[-1], side="right"))
        return int(ids[min(pick, len(ids) - 1)])

    def _candidates(self, logits: np.ndarray) -> np.ndarray | None:
        """Ids left after top-p and min-p; None when all of the vocabulary is."""
        ids = _top_p(logits, self.top_p) if self.top_p < 1.0 else None
        if self.min_p > 0.0:
            ids = _min_p(logits, ids, self.min_p)
        return ids

    def _biased(self, logits: np.ndarray) -> np.ndarray:
        if not len(self._bias_ids):
            return logits
        logits = logits.copy()
        logits[self._bias_ids] += self._bias_values
        return logits


def _weights(values: np.ndarray, temperature: float) -> np.ndarray:
    """Unnormalised probabilities of ``values`` at ``temperature`` (float64)."""
    values = values.astype(np.float64)
    return np.exp((values - values.max()) / temperature)


def _top(logits: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best ids, best first."""
    part = np.argpartition(logits, -k)[-k:] if k < len(logits) else np.arange(len(logits))
    return part[np.argsort(-logits[part], kind="stable")]


def _top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """The fewest best tokens whose probability (unit temperature) adds up to at least ``p``."""
    best = float(logits.max())
    total = float(np.exp(np.subtract(logits, best, dtype=np.float32)).sum())  # float32, pairwise: 1e-7 exact
    k = min(_BLOCK, len(logits))
    while True:  # sort only as many of the best tokens as the cut may need
        top = _top(logits, k)
        cumulative = np.cumsum(np.exp((logits[top] - best).astype(np.float64))) / total
        n = int(np.searchsorted(cumulative, p, side="left")) + 1
        if n <= len(top) or len(top) == len(logits):
            return top[:n]
        k = min(k * 16, len(logits))


def _min_p(logits: np.ndarray, ids: np.ndarray | None, p: float) -> np.ndarray:
    """Tokens whose probability is at least ``p`` times the best one's (at least one)."""
    if ids is None:
        threshold = float(logits.max()) + float(np.log(p))
        return np.flatnonzero(logits >= threshold)
    threshold = float(logits[ids[0]]) + float(np.log(p))
    return ids[:max(1, int(np.count_nonzero(logits[ids] >= threshold)))]


class DrawBuffer:
    """Scratch rows for :func:`draw_rows`, padded to whole blocks with zeros that stay zero."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._data = np.zeros((1, -(-n_vocab // _BLOCK) * _BLOCK), dtype=np.float32)

    def rows(self, k: int) -> np.ndarray:
        if k > len(self._data):
            self._data = np.zeros((k, self._data.shape[1]), dtype=np.float32)
        return self._data[:k]


def draw_rows(logits: np.ndarray, temperatures: list[float], uniforms: list[float], buffer: DrawBuffer) -> list[int]:
    """Draw one token per row from softmax(row / temperature) over the whole vocabulary.

    ``logits`` is ``[k, n_vocab]``; the weights are computed for all rows at
    once in float32 (each weight and block sum exact to about 1e-7 of itself),
    summed block by block with running sums in float64, and each row's draw
    then searches its own sums.  A huge 1/temperature only sends more weights to 0.
    """
    k, n = logits.shape
    if n != buffer.n_vocab:  # the padding past n must be zeros that no other width has written to
        raise ValueError(f"a draw over {n} tokens needs a DrawBuffer of {n}, not {buffer.n_vocab}")
    rows = buffer.rows(k)
    weights = rows[:, :n]
    with np.errstate(over="ignore", under="ignore"):
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=weights)
        scale = [min(1.0 / t, 1e30) for t in temperatures]
        if any(x != 1.0 for x in scale):
            weights *= np.array(scale, dtype=np.float32)[:, None]
        np.exp(weights, out=weights)
    outer = np.cumsum(rows.reshape(k, -1, _BLOCK).sum(axis=2), axis=1, dtype=np.float64)
    return [_pick(rows[r], outer[r], uniforms[r], n) for r in range(k)]


def _pick(weights: np.ndarray, outer: np.ndarray, u: float, n: int) -> int:
    """The token at fraction ``u`` of the total weight: a block by its running sum, then a token within it."""
    target = u * outer[-1]
    b = min(int(np.searchsorted(outer, target, side="right")), len(outer) - 1)
    inner = np.cumsum(weights[b * _BLOCK:(b + 1) * _BLOCK], dtype=np.float64)
    rest = target - (outer[b - 1] if b else 0.0)
    i = min(int(np.searchsorted(inner, rest, side="right")), _BLOCK - 1)
    while b * _BLOCK + i >= n or weights[b * _BLOCK + i] == 0.0:  # padding or a token of zero weight
        i -= 1
        if i < 0:
            b, i = b - 1, _BLOCK - 1
    return b * _BLOCK + i
