"""The engine loop's speculative part: drafts for a step's decoding shares, and their verification.

See :mod:`.speculative` for why verification keeps the output's distribution.  The loop calls
:meth:`Speculator.setup` as it prepares a request, :meth:`Speculator.propose` between the
scheduler's plan and the batch, and :meth:`Speculator.verify` for each drafted share after the
decode; :meth:`~llamarun.runtime.scheduler.Scheduler.keep_drafts` then cuts the rejected drafts
out of the KV.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..engine import Batch, Context, Model
from .config import RuntimeConfig
from .draft_model import DraftAsk, DraftModel
from .metrics import RuntimeMetrics
from .scheduler import Work
from .sequence import ActiveRequest
from .speculative import Speculation, SpeculationState, draft_limit, resolve, worth_drafting

__all__ = ["Speculator", "write_drafts"]

logger = logging.getLogger(__name__)


class Speculator:
    """Drafting and verification for one model's requests (engine thread only)."""

    def __init__(self, model: Model, config: RuntimeConfig, metrics: RuntimeMetrics) -> None:
        self.model = model
        self.settings: Speculation = config.speculative or Speculation()
        self.metrics = metrics
        self.n_ctx = config.n_ctx
        path = self.settings.draft_model
        self.draft_model = DraftModel(path, model, config, p_min=config.speculative_p_min) if path else None

    def setup(self, req: ActiveRequest) -> None:
        """Resolve the request's speculation against the model's settings (a refusal raises)."""
        draft_name = self.draft_model.path if self.draft_model is not None else None
        kind, n_max = resolve(req.spec.speculative, self.settings, draft_name)
        req.speculation = SpeculationState(kind, n_max) if kind != "off" and n_max > 0 else None

    def propose(self, work: list[Work], budget: int) -> None:
        """Give this step's decoding shares their drafts, within what is left of the token budget."""
        left = budget - sum(w.count for w in work)
        sharing = sum(1 for w in work if w.sample)
        asks: list[tuple[Work, DraftAsk]] = []
        for w in work:
            state = w.req.speculation
            if state is None or not w.sample or w.count != 1 or left <= 0:
                continue
            if (k := min(draft_limit(w.req, self.n_ctx), left, state.wants())) <= 0:
                continue
            if (k := min(k, worth_drafting(state.acceptance(), sharing))) <= 0:
                state.skip()
                continue
            if state.kind == "ngram":
                w.draft = state.index.draft(w.req.tokens, k)
            else:
                asks.append((w, DraftAsk(w.req.slot, w.req.tokens, k)))  # type: ignore[arg-type]
            left -= len(w.draft) if state.kind == "ngram" else k
        if asks:
            for (w, _), draft in zip(asks, self._model_drafts([a for _, a in asks]), strict=True):
                w.draft = draft

    def _model_drafts(self, asks: list[DraftAsk]) -> list[list[int]]:
        assert self.draft_model is not None
        try:
            return self.draft_model.draft(asks)
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
