"""Draft-model drafting: a smaller model of the same vocabulary proposes tokens greedily.

The draft model has its own context with one sequence per slot of the target (the same ids),
and keeps per sequence the tokens its KV holds, so each step it computes only what the request
gained since (its accepted drafts and its new token) and cuts off the rejected drafts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..engine import Batch, Context, Model
from ..errors import ModelLoadError
from ..types import ContextOptions
from .config import RuntimeConfig
from .slots import common_prefix

__all__ = ["DraftAsk", "DraftModel", "check_same_vocabulary"]


def check_same_vocabulary(target: Model, draft: Model) -> None:
    """Refuse a draft model whose tokens are not the target's (same ids, same pieces, same specials)."""
    tv, dv = target.vocab, draft.vocab
    why = None
    if tv.n_tokens != dv.n_tokens:
        why = f"{dv.n_tokens} tokens where the model has {tv.n_tokens}"
    elif (tv.bos, tv.eos, tv.eot) != (dv.bos, dv.eos, dv.eot):
        why = "other BOS/EOS tokens"
    else:
        differ = next((t for t in range(tv.n_tokens) if tv.piece(t, special=True) != dv.piece(t, special=True)), None)
        if differ is not None:
            why = f"token {differ} is {dv.piece(differ, special=True)!r}, not {tv.piece(differ, special=True)!r}"
    if why is not None:
        raise ModelLoadError(f"draft model {draft.path!r} has another vocabulary than {target.path!r} ({why}): "
                             "a draft model must share the model's vocabulary", path=str(draft.path))


@dataclass(frozen=True, slots=True)
class DraftAsk:
    """Draft up to ``k`` tokens after ``tokens`` (a request's known tokens) in sequence ``seq``."""

    seq: int
    tokens: Sequence[int]
    k: int


class DraftModel:
    """A loaded draft model: its context (a sequence per target slot), batch and caches.

    ``p_min``: a drafted token whose probability under the draft model is below it ends the
    draft (as llama.cpp's ``--draft-p-min``).
    """

    def __init__(self, path: str, target: Model, config: RuntimeConfig, *, p_min: float = 0.5) -> None:
        self.path = path
        self.p_min = p_min
        self.model = Model(path, n_gpu_layers=config.n_gpu_layers)
        try:
            check_same_vocabulary(target, self.model)
            options = ContextOptions(
                n_ctx=config.total_kv, n_batch=config.n_batch, n_ubatch=config.n_ubatch, n_seq_max=config.n_slots,
                n_threads=config.n_threads, n_threads_batch=config.n_threads_batch, flash_attn=config.flash_attn,
                kv_unified=config.kv_unified)
            self.ctx = Context(self.model, options)
        except BaseException:
            self.model.close()
            raise
        self.batch = Batch(self.ctx.n_batch, 1)
        self.cached: list[list[int]] = [[] for _ in range(config.n_slots)]

    def draft(self, asks: Sequence[DraftAsk]) -> list[list[int]]:
        """Greedy drafts for each ask, computed together: one decode per drafted position."""
        drafts: list[list[int]] = [[] for _ in asks]
        going = self._catch_up(asks, drafts)
        while going:
            batch = self.batch
            batch.clear()
            rows = {}
            for i in going:
                ask, token = asks[i], drafts[i][-1]
                rows[i] = batch.add(token, len(ask.tokens) + len(drafts[i]) - 1, ask.seq, True)
                self.cached[ask.seq].append(token)
            self.ctx.decode(batch)
            going = [i for i in going if self._take(i, rows[i], asks, drafts)]
        return drafts

    def _catch_up(self, asks: Sequence[DraftAsk], drafts: list[list[int]]) -> list[int]:
        """Bring each sequence's KV to its request's tokens (in as many decodes as the batch
        needs) and take the first drafted token; returns the asks that draft on."""
        todo: list[tuple[int, int]] = []  # (ask, first position still to compute)
        for i, ask in enumerate(asks):
            cached = self.cached[ask.seq]
            keep = min(common_prefix(cached, ask.tokens), len(ask.tokens) - 1)
            if len(cached) > keep:
                if not self.ctx.seq_rm(ask.seq, keep, -1):
                    self.ctx.seq_rm(ask.seq, -1, -1)
                    keep = 0
                del cached[keep:]
            todo.append((i, keep))
        going: list[int] = []
        while todo:
            todo = self._decode_some(todo, asks, drafts, going)
        return going

    def _decode_some(self, todo: list[tuple[int, int]], asks: Sequence[DraftAsk], drafts: list[list[int]],
                     going: list[int]) -> list[tuple[int, int]]:
        batch = self.batch
        batch.clear()
        left: list[tuple[int, int]] = []
        ends: list[tuple[int, int]] = []
        for i, start in todo:
            ask = asks[i]
            room = batch.capacity - batch.n_tokens
            if room <= 0:
                left.append((i, start))
                continue
            piece = list(ask.tokens[start:start + room])
            done = start + len(piece) == len(ask.tokens)
            row = batch.add_tokens(piece, start, ask.seq, logits_last=done)
            self.cached[ask.seq].extend(piece)
            if done:
                ends.append((i, row))
            else:
                left.append((i, start + len(piece)))
        self.ctx.decode(batch)
        going.extend(i for i, row in ends if self._take(i, row, asks, drafts))
        return left

    def _take(self, i: int, row: int, asks: Sequence[DraftAsk], drafts: list[list[int]]) -> bool:
        """Add the draft model's choice at ``row`` to draft ``i``; True when it should draft on."""
        logits = self.ctx.logits_view(row)
        token = int(np.argmax(logits))
        if self.p_min > 0.0:
            top = float(logits[token])
            p = 1.0 / float(np.exp(logits - top, dtype=np.float64).sum())
            if p < self.p_min:
                return False
        drafts[i].append(token)
        return len(drafts[i]) < asks[i].k

    def close(self) -> None:
        for handle in (self.batch, self.ctx, self.model):
            handle.close()
