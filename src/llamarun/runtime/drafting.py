"""The engine loop's speculative part: drafts for a step's decoding shares, and their verification.

See :mod:`.speculative` for why verification keeps the output's distribution.  The loop calls
:meth:`Speculator.setup` as it prepares a request, :meth:`Speculator.propose` between the
scheduler's plan and the batch, and :meth:`Speculator.verify` for each drafted share after the
decode; :meth:`~llamarun.runtime.scheduler.Scheduler.keep_drafts` then cuts the rejected drafts
out of the KV.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..engine import Batch, Context, Model
from .config import RuntimeConfig
from .draft_cost import DecodeCost, best_draft_length
from .draft_model import DraftAsk, DraftModel
from .metrics import RuntimeMetrics
from .scheduler import Work
from .sequence import ActiveRequest
from .speculative import DEFAULT_ACCEPTANCE, MatchAcceptance, Speculation, SpeculationState, draft_limit, resolve

__all__ = ["Speculator", "write_drafts"]

logger = logging.getLogger(__name__)
_EXPLORE_EVERY = 64  # of the drafts declined for their cost, one is made to measure that cost again
_EXPLORE_ACCEPTANCE = 0.5  # only for requests whose drafts are being kept
_CLOSED_BATCH_SHARE = 0.75  # of a full batch's requests that must draft for any to (see Speculator.propose)


class Speculator:
    """Drafting and verification for one model's requests (engine thread only)."""

    def __init__(self, model: Model, config: RuntimeConfig, metrics: RuntimeMetrics) -> None:
        self.model = model
        self.settings: Speculation = config.speculative or Speculation()
        self.metrics = metrics
        self.n_ctx = config.n_ctx
        self.cost = DecodeCost()
        self.matches = MatchAcceptance()  # n-gram drafts' kept rates by match length, over requests
        self._declined = 0  # drafts the costs said no to (every _EXPLORE_EVERY-th is made anyway)
        path = self.settings.draft_model
        self.draft_model = DraftModel(path, model, config, p_min=config.speculative_p_min) if path else None

    def setup(self, req: ActiveRequest) -> None:
        """Resolve the request's speculation against the model's settings (a refusal raises)."""
        draft_name = self.draft_model.path if self.draft_model is not None else None
        kind, n_max = resolve(req.spec.speculative, self.settings, draft_name)
        req.speculation = SpeculationState(kind, n_max) if kind != "off" and n_max > 0 else None

    def propose(self, work: list[Work], budget: int, *, queued: bool = False) -> None:
        """Give this step's decoding shares their drafts, within what is left of the token budget.

        Alone, or with requests waiting for a slot (a request that finishes sooner lets the next
        one start sooner), each request drafts the length that maximises its expected tokens per
        second (:func:`~.draft_cost.best_draft_length`, from its recent acceptance and the decode
        times measured here).  With several requests running and none
        waiting (``queued`` False), the step count is the slowest request's: drafts shorten it
        only when (nearly) every request in the step drafts, so unless three in four have a
        draft none is made.
        """
        sampled = [w for w in work if w.sample]
        left = budget - sum(w.count for w in work)
        asks: list[tuple[Work, DraftAsk]] = []
        drafting = 0  # shares with a draft (or a draft model's draft to come)
        for w in sampled:
            k = self._room(w, left)
            if k <= 0:
                continue
            state = w.req.speculation
            assert state is not None
            if state.kind == "ngram":
                found, match = state.index.lookup(w.req.tokens, k)
                if state.wants(match) <= 0:  # paused after repeated misses, and no copy under way
                    continue
                k = self._length(state, len(sampled), len(found), self.matches.rate(match))
                w.draft, w.match = found[:k], match
                left -= len(w.draft)
            elif state.wants() <= 0:
                continue
            elif (k := self._length(state, len(sampled), k, DEFAULT_ACCEPTANCE)) > 0:
                asks.append((w, DraftAsk(w.req.slot, w.req.tokens, k)))  # type: ignore[arg-type]
                left -= k
            drafting += bool(w.draft) or (state.kind != "ngram" and k > 0)
        if len(sampled) > 1 and not queued and drafting < _CLOSED_BATCH_SHARE * len(sampled):
            for w in sampled:
                w.draft = []
            return
        if asks:
            for (w, _), draft in zip(asks, self._model_drafts([a for _, a in asks]), strict=True):
                w.draft = draft

    def _room(self, w: Work, left: int) -> int:
        """The most tokens ``w`` may draft this step (0: none)."""
        state = w.req.speculation
        if state is None or w.count != 1 or left <= 0:
            return 0
        # the length itself is chosen from the acceptance and the costs, up to n_max (the state's own
        # cap would hold a request that just missed to one draft, which may never be worth its decode)
        return max(0, min(draft_limit(w.req, self.n_ctx), left, state.n_max))

    def _length(self, state: SpeculationState, sharing: int, most: int, prior: float) -> int:
        """How many of ``most`` draft tokens to decode (0: none), for the request's acceptance
        over ``prior`` (the rate of drafts like this one)."""
        if most <= 0:
            return 0
        acceptance = state.acceptance(prior)
        chosen = best_draft_length(acceptance, sharing, most, self.cost, drafted_by_model=state.kind == "draft")
        if chosen <= 0 and self._explore(acceptance):
            return 1  # now and then a draft where the costs say no: the measured price stays current
        if chosen <= 0:
            state.skip()  # not worth it at this batch: its evidence fades, so it tries again later
        return chosen

    def _explore(self, acceptance: float) -> bool:
        self._declined += 1
        return acceptance >= _EXPLORE_ACCEPTANCE and self._declined % _EXPLORE_EVERY == 0

    def observe(self, tokens: int, seconds: float) -> None:
        """A decode of ``tokens`` tokens took ``seconds`` (what drafts cost here)."""
        self.cost.observe(tokens, seconds)

    def _model_drafts(self, asks: list[DraftAsk]) -> list[list[int]]:
        assert self.draft_model is not None
        started = time.perf_counter()
        try:
            drafts = self.draft_model.draft(asks)
            self.cost.observe_drafting(max(len(d) for d in drafts), time.perf_counter() - started)
            return drafts
        except Exception:  # noqa: BLE001 - a failed draft costs the step its drafts, nothing else
            logger.exception("the draft model failed; its caches are cleared")
            self.draft_model.ctx.clear_memory()
            for cached in self.draft_model.cached:
                cached.clear()
            return [[] for _ in asks]

    def verify(self, w: Work, ctx: Context,
               logprobs: Callable[[int], Any]) -> tuple[list[int], list[Any]]:
        """Sample the share's chain at its last token and at each draft in turn while the drafts
        hold; returns the tokens to emit (the drafts kept, then one sampled token) and the
        logprobs of each (from ``logprobs(row)``, None when not asked)."""
        req, draft = w.req, w.draft
        chain, vocab, want_lp = req.sampler, self.model.vocab, bool(req.spec.logprobs)
        tokens: list[int] = []
        lps: list[Any] = []
        for i in range(len(draft) + 1):
            row = w.row + i
            lps.append(logprobs(row) if want_lp else None)
            token = chain.sample(ctx, row)  # type: ignore[union-attr]
            tokens.append(token)
            if i == len(draft) or token != draft[i] or vocab.is_eog(token):
                break
        self.record(req, len(draft), len(tokens) - 1)
        if req.speculation.kind == "ngram":  # type: ignore[union-attr]
            self.matches.record(w.match, len(draft), len(tokens) - 1)
        return tokens, lps

    def record(self, req: ActiveRequest, drafted: int, accepted: int) -> None:
        req.speculation.record(drafted, accepted)  # type: ignore[union-attr]
        self.metrics.spec_drafted += drafted
        self.metrics.spec_accepted += accepted

    def close(self) -> None:
        if self.draft_model is not None:
            self.draft_model.close()


def write_drafts(batch: Batch, w: Work) -> None:
    """Append the share's drafts after its last token, each with its logits (verification samples them)."""
    pos, seq = w.start + w.count, w.req.slot
    for k, token in enumerate(w.draft):
        batch.add(token, pos + k, seq, True)  # type: ignore[arg-type]
