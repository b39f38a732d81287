"""Speculative decoding: drafts proposed per request and verified within the step's one decode.

Each decoding request may add up to ``n_max`` drafted tokens after its last sampled token; the
step's batch computes them with every other sequence's tokens, and verification samples the
request's own chain at each drafted position in turn, keeping drafts while the sampled token
equals the draft.  The drafts are deterministic (an n-gram lookup in the request's own prompt and
output, as llama.cpp's ``ngram-simple`` and vLLM's ``ngram`` do, or a draft model's greedy
choice), so this is rejection sampling with a point-mass draft distribution: a draft ``d`` is
kept with probability ``p(d)``, and on rejection the token drawn from ``p`` without ``d`` is
kept instead.  Every emitted token is one draw of the request's sampler chain (grammar,
penalties, seed and all) from the target model's logits at its position, exactly as without
speculation; greedy output is the target's argmax at every position.

Drafting adapts per request (:class:`SpeculationState`): the draft length follows acceptance,
and after repeated misses drafting pauses for a growing number of steps, so a request whose
output does not repeat its input costs nearly nothing.  It also adapts to the machine
and the batch (:mod:`.draft_cost`): each draft length maximises the expected tokens per second
given the request's recent acceptance and the decode times measured here for each batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from .sequence import ActiveRequest

__all__ = ["DEFAULT_ACCEPTANCE", "MatchAcceptance", "NgramIndex", "SPECULATION_TYPES", "Speculation",
           "SpeculationState", "draft_limit", "resolve"]

SPECULATION_TYPES = ("off", "ngram", "draft")
_MAX_DRAFT = 64
_NGRAM_SIZES = (4, 3, 2)  # suffix lengths looked up, longest first (shorter ones match more, and worse)
_MAX_PAUSE = 64  # most steps drafting pauses after repeated misses
_DECAY = 0.8  # weight of a step's acceptance evidence one step later
_FORGET = 0.95  # and one step later when it did not draft (so a request refused drafts tries again)
DEFAULT_ACCEPTANCE = 0.8  # a draft's kept rate before anything is known of drafts like it
_PRIOR_WEIGHT = 5.0  # pseudo-counts of the prior (that, or the match length's rate) in a request's estimate
_LONGEST_MATCH = 32  # a match is measured back this far at most
_MATCH_EDGES = (4, 8, 16)  # match lengths 2-3, 4-7, 8-15, 16 or more ...
_MATCH_PRIORS = (0.6, 0.75, 0.85, 0.95)  # ... and their kept rates before any is measured
_MATCH_WEIGHT = 10.0  # pseudo-counts of those priors
_MATCH_DECAY = 0.99  # weight of a draft's evidence one draft later (of the model's drafts)
_COPY_MATCH = 8  # an n-gram match this long ends a pause: the output is copying its input


@dataclass(frozen=True)
class Speculation:
    """How a model or a request speculates: ``type`` ``off``, ``ngram`` or ``draft`` (a draft
    model, ``draft_model``: its GGUF path in a model's settings, the loaded draft's name or path
    in a request), up to ``n_max`` drafted tokens a step.  In a request, None fields take the
    model's settings."""

    type: str | None = None
    n_max: int | None = None
    draft_model: str | None = None

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in SPECULATION_TYPES:
            raise InvalidParameterError(f"speculative.type must be one of {', '.join(SPECULATION_TYPES)}",
                                        field="speculative.type")
        if self.n_max is not None and (isinstance(self.n_max, bool) or not 0 <= self.n_max <= _MAX_DRAFT):
            raise InvalidParameterError(f"speculative.n_max must be between 0 and {_MAX_DRAFT}",
                                        field="speculative.n_max")


def resolve(asked: Speculation | None, model: Speculation, draft_name: str | None) -> tuple[str, int]:
    """The (type, n_max) one request runs with, from its fields over the model's settings.

    A request naming a draft model other than the loaded one, or asking for draft-model
    speculation where none is loaded, is refused: that is not something a request can change.
    """
    asked = asked or Speculation()
    kind = asked.type or model.type or "off"
    n_max = model.n_max if asked.n_max is None else asked.n_max
    n_max = 8 if n_max is None else n_max
    if asked.draft_model is not None:
        if draft_name is None or asked.draft_model not in _names(draft_name):
            raise InvalidParameterError(
                f"speculative.draft_model {asked.draft_model!r} is not this model's draft model "
                f"({draft_name or 'none loaded'}): set it in the model's settings (speculative_draft_model)",
                field="speculative.draft_model")
        if asked.type is None:
            kind = "draft"
    if kind == "draft" and draft_name is None:
        raise InvalidParameterError("speculative.type 'draft' needs a draft model loaded with this model "
                                    "(setting speculative_draft_model)", field="speculative.type")
    return kind, n_max


def _names(path: str) -> set[str]:
    from pathlib import Path

    p = Path(path)
    return {path, p.name, p.stem}


class NgramIndex:
    """The most recent position following each n-gram of a request's tokens, kept up to date
    incrementally (each lookup indexes only the tokens added since the last one)."""

    def __init__(self, sizes: tuple[int, ...] = _NGRAM_SIZES) -> None:
        self.sizes = sizes
        self._after: list[dict[tuple[int, ...], int]] = [{} for _ in sizes]
        self._indexed = 0  # positions p < _indexed have their n-grams ending at p recorded

    def draft(self, tokens: list[int], k: int) -> list[int]:
        """Up to ``k`` tokens that followed the latest earlier occurrence of the longest suffix of
        ``tokens`` found (nothing when no suffix of the smallest size repeats)."""
        return self.lookup(tokens, k)[0]

    def lookup(self, tokens: list[int], k: int) -> tuple[list[int], int]:
        """:meth:`draft`'s tokens and the match's length: how many of the tokens before the
        earlier occurrence equal the last ones of ``tokens`` (up to ``_LONGEST_MATCH``; a long
        match is a copy under way, whose drafts are kept far more often)."""
        n = len(tokens)
        for p in range(max(self._indexed, 1), n):  # the n-grams that end just before position p
            for size, after in zip(self.sizes, self._after, strict=True):
                if p >= size:
                    after[tuple(tokens[p - size:p])] = p
        self._indexed = max(self._indexed, n)
        for size, after in zip(self.sizes, self._after, strict=True):
            if n < size:
                continue
            p = after.get(tuple(tokens[n - size:]))
            if p is not None and p < n:
                return tokens[p:p + k], _match_length(tokens, p, n, size)
        return [], 0


def _match_length(tokens: list[int], p: int, n: int, known: int) -> int:
    """How many tokens before ``p`` equal those before ``n`` (``known`` of them are known to)."""
    length = known
    while length < _LONGEST_MATCH and length < p and tokens[p - 1 - length] == tokens[n - 1 - length]:
        length += 1
    return length


class MatchAcceptance:
    """How often an n-gram draft's tokens are kept, by the length of the match they came from,
    over this model's recent requests (rates only, no text).  A new request's acceptance starts
    from its match's rate instead of one prior for all: a draft from a 20-token match is a copy
    under way and is kept nearly always, one from a 2-token match far less often."""

    def __init__(self) -> None:
        self._kept = [prior * _MATCH_WEIGHT for prior in _MATCH_PRIORS]
        self._cut = [(1 - prior) * _MATCH_WEIGHT for prior in _MATCH_PRIORS]

    @staticmethod
    def bucket(match: int) -> int:
        return sum(match >= edge for edge in _MATCH_EDGES)

    def rate(self, match: int) -> float:
        """The chance that a draft token from a match of this length is kept."""
        b = self.bucket(match)
        return self._kept[b] / (self._kept[b] + self._cut[b])

    def record(self, match: int, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        b = self.bucket(match)
        self._kept[b] = self._kept[b] * _MATCH_DECAY + accepted
        self._cut[b] = self._cut[b] * _MATCH_DECAY + (accepted < drafted)


@dataclass
class SpeculationState:
    """One request's speculation: what it asked for, how well it goes, and its counts.

    :meth:`acceptance` (recent evidence, decayed) is what the draft length is chosen from
    (:func:`~.draft_cost.best_draft_length`); ``cap`` still follows acceptance as before (doubling
    when a whole draft is kept), but only its pauses matter now: two misses in a row at length 1
    pause drafting for 2, 4, ... up to ``_MAX_PAUSE`` steps (one accepted draft ends the pauses,
    and so does an n-gram match of ``_COPY_MATCH`` tokens: n-gram lookups go on while paused).
    """

    kind: str
    n_max: int
    cap: int = 0
    pause: int = 0
    misses: int = 0
    pauses: int = 0
    drafted: int = 0
    accepted: int = 0
    steps: int = 0
    index: NgramIndex = field(default_factory=NgramIndex)
    kept: float = 0.0  # recent drafted tokens kept, and recent drafts cut short (decayed counts)
    cut: float = 0.0

    def __post_init__(self) -> None:
        self.cap = self.cap or self.n_max

    def wants(self, match: int = 0) -> int:
        """How many tokens to draft this step (0: none); counts down a pause, which a copy under
        way ends at once: an n-gram ``match`` of ``_COPY_MATCH`` tokens or more (a request that
        explains before it quotes its input missed while it explained)."""
        if self.pause > 0 and match >= _COPY_MATCH:  # the misses were another kind of draft: start afresh
            self.pause = self.pauses = self.misses = 0
            self.kept = self.cut = 0.0
        if self.pause > 0:
            self.pause -= 1
            return 0
        return self.cap

    def acceptance(self, prior: float = DEFAULT_ACCEPTANCE) -> float:
        """The estimated chance that the next drafted token is kept: the request's recent steps
        (weighing most) over ``prior``, the rate of drafts like this one (the model's, by match
        length; with none 0.8, so a new request tries drafts even in a full batch)."""
        return (self.kept + _PRIOR_WEIGHT * prior) / (self.kept + self.cut + _PRIOR_WEIGHT)

    def skip(self) -> None:
        """A step in which it could have drafted and did not (the batch made it not worth it)."""
        self.kept *= _FORGET
        self.cut *= _FORGET

    def record(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
        self.steps += 1
        self.kept = self.kept * _DECAY + accepted
        self.cut = self.cut * _DECAY + (accepted < drafted)
        if accepted == drafted:
            self.cap = min(self.n_max, self.cap * 2)
        else:
            self.cap = max(1, accepted + 1)
        if accepted:
            self.misses = self.pauses = 0
            return
        self.misses += 1
        if self.cap == 1 and self.misses >= 2:
            self.pauses += 1
            self.pause = min(_MAX_PAUSE, 1 << self.pauses)
            self.misses = 0


def draft_limit(req: ActiveRequest, n_ctx: int) -> int:
    """Most drafted tokens ``req`` can use now: its emitted tokens (drafts kept plus one) must fit
    in ``max_tokens`` and the context."""
    room = n_ctx - len(req.tokens) - 1
    if req.max_new is not None:
        room = min(room, req.max_new - len(req.generated) - 1)
    return max(0, room)
