"""What a drafted token costs on this machine, learned from the engine's own decodes.

A decode of ``T`` tokens does not cost ``T`` times a one-token decode, nor the same: on a CPU,
llama.cpp's one-token path (a matrix-vector product) and its batched path differ, and by how much
depends on the CPU, the model and its quantization (SmolLM2-135M Q4_1 on one 2-core AVX-512 host:
9.7 ms for one token, 18.7 for two, 47 for nine).  So the speculator does not assume a price: it
keeps the recent decode time for each batch size it has seen and chooses each draft length to
maximise the expected tokens per second (:func:`best_draft_length`).
"""

from __future__ import annotations

__all__ = ["DecodeCost", "best_draft_length"]

_LARGEST = 256  # batch sizes remembered (drafting only ever asks about small ones)
_WEIGHT = 0.1  # of a new observation in its batch size's running mean
# An extra token's share of a one-token decode for batch sizes not seen yet: optimistic on purpose,
# so a size is tried (and then measured) rather than never drafted because it was guessed dear.
_PRIOR_SLOPE = 0.1
# How much more a draft must promise than none (tokens per second): its acceptance is an estimate, and a
# draft that misses costs the step its extra rows (on one AVX-512 host a second row is 0.9 of a one-token
# decode), so drafts promising a percent or two lost in plain chat (0.95x there, 36 of 106 drafts kept).
_MIN_GAIN = 0.05


class DecodeCost:
    """Recent decode seconds per batch size, and estimates for sizes not seen yet."""

    def __init__(self) -> None:
        self._seconds: dict[int, float] = {}
        self._seen: dict[int, int] = {}
        self.draft_token_s = 0.0  # a draft model's time per drafted token (0: n-gram drafts cost nothing)

    def observe(self, tokens: int, seconds: float) -> None:
        """One decode of ``tokens`` tokens took ``seconds``.

        A size's first readings are averaged plainly (then a running mean), and a first reading
        above twice the estimate counts as twice the estimate: sizes above the batch are seen only
        when requests draft, so one slow decode (another process on the cores) taken as the price
        would stop drafting there for good.
        """
        if not 0 < tokens <= _LARGEST or seconds <= 0:
            return
        seen = self._seen.get(tokens, 0)
        if seen == 0:
            seconds = min(seconds, 2.0 * self.seconds(tokens)) if self._seconds else seconds
            self._seconds[tokens] = seconds
        else:
            weight = max(_WEIGHT, 1.0 / (seen + 1))
            self._seconds[tokens] += weight * (seconds - self._seconds[tokens])
        self._seen[tokens] = seen + 1

    def observe_drafting(self, drafted: int, seconds: float) -> None:
        """A draft model took ``seconds`` to draft ``drafted`` tokens (the most of any request)."""
        if drafted > 0 and seconds > 0:
            per_token = seconds / drafted
            self.draft_token_s = per_token if not self.draft_token_s else (
                self.draft_token_s + _WEIGHT * (per_token - self.draft_token_s))

    def seconds(self, tokens: int) -> float:
        """Estimated seconds of a decode of ``tokens`` (relative to 1.0 for one token before any is seen)."""
        if tokens in self._seconds:
            return self._seconds[tokens]
        known = sorted(self._seconds)
        if not known:
            return 1.0 + _PRIOR_SLOPE * (tokens - 1)
        below = [t for t in known if t < tokens]
        above = [t for t in known if t > tokens]
        if below and above:
            lo, hi = below[-1], above[0]
            share = (tokens - lo) / (hi - lo)
            return self._seconds[lo] + share * (self._seconds[hi] - self._seconds[lo])
        if above:  # smaller than any seen: scale the smallest by the prior's shape
            hi = above[0]
            return self._seconds[hi] * (1.0 + _PRIOR_SLOPE * (tokens - 1)) / (1.0 + _PRIOR_SLOPE * (hi - 1))
        # larger than any seen: the prior's slope from the largest, however steep the sizes below it
        # rose. CPU decode costs are concave (one token takes the matrix-vector path, two or more the
        # batched one: 6.5 ms, 21 ms at 4 and 29 ms at 8 tokens on one host), so extending the steep
        # rise from 1 to 4 would price 8 tokens at 41 ms, never try them, and hold drafts at 3.
        lo = below[-1]
        slope = _PRIOR_SLOPE * self._seconds[known[0]] / (1.0 + _PRIOR_SLOPE * (known[0] - 1))
        return self._seconds[lo] + slope * (tokens - lo)


def best_draft_length(acceptance: float, sharing: int, most: int, cost: DecodeCost, *,
                      drafted_by_model: bool = False) -> int:
    """The draft length (0 to ``most``) that maximises expected tokens per second for a request
    whose next draft is kept with probability ``acceptance``, in a step where ``sharing``
    requests sample: the ``k``-th draft is kept with probability ``acceptance ** k``, and ``k``
    drafts make the step's decode ``cost.seconds(sharing + k)`` instead of ``cost.seconds(sharing)``
    (plus, ``drafted_by_model``, the draft model's time for ``k`` tokens).  A length is chosen only
    when it promises ``_MIN_GAIN`` more than drafting none.
    """
    best, best_rate = 0, sharing / cost.seconds(sharing) * (1.0 + _MIN_GAIN)
    kept, chance = 0.0, 1.0
    extra = cost.draft_token_s if drafted_by_model else 0.0
    for k in range(1, most + 1):
        chance *= acceptance
        kept += chance
        rate = (sharing + kept) / (cost.seconds(sharing + k) + extra * k)
        if rate > best_rate:
            best, best_rate = k, rate
    return best
