"""The engine loop: one step = schedule within a token budget, decode once, sample, deliver.

Everything here runs on the model's engine thread, the only thread that calls
llama.cpp for this model.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..engine import Batch, Context, Detokenizer, DrawBuffer, Model, SamplerChain, sample_rows
from ..errors import (
    ContextOverflowError,
    DecodeAbortedError,
    DecodeError,
    InvalidParameterError,
    KVCacheFullError,
    LlamarunError,
)
from ..types import ContextOptions, FinishReason, PromptSegments, TokenLogprob
from .config import RuntimeConfig
from .metrics import RuntimeMetrics
from .request import RequestStatus
from .sequence import ActiveRequest
from .slots import SlotTable, copy_threshold

__all__ = ["EngineLoop"]

logger = logging.getLogger(__name__)


_MOVE_MIN_STEPS = 8  # a request moves to close a slot gap only with at least this many steps left


@dataclass(frozen=True)
class _Work:
    """One request's share of a batch: ``count`` tokens from ``start``; ``index`` of its logits or -1."""

    req: ActiveRequest
    start: int
    count: int
    index: int


def _nothing() -> None:
    pass


def truncate_prompt(tokens: list[int], limit: int, n_keep: int) -> list[int]:
    """Keep the first ``n_keep`` tokens and the most recent ones, ``limit`` in all."""
    keep = min(n_keep, limit // 2)
    return tokens[:keep] + tokens[len(tokens) - (limit - keep):]


class EngineLoop:
    """State and steps of the engine thread (not thread-safe; see :class:`Runtime`)."""

    def __init__(self, model: Model, config: RuntimeConfig, metrics: RuntimeMetrics) -> None:
        self.model = model
        self.config = config
        self.metrics = metrics
        options = ContextOptions(
            n_ctx=config.total_kv, n_batch=config.n_batch, n_ubatch=config.n_ubatch, n_seq_max=config.n_slots,
            n_threads=config.n_threads, n_threads_batch=config.n_threads_batch, flash_attn=config.flash_attn,
            embeddings=config.embeddings, kv_unified=config.kv_unified,
        )
        self.ctx = Context(model, options)
        self.batch = Batch(self.ctx.n_batch, 1)  # llama.cpp may clamp n_batch to the context
        self._draw = DrawBuffer(model.vocab.n_tokens)  # scratch rows for drawing every sequence's token at once
        min_copy = config.min_prefix_copy or copy_threshold(model.info, config.n_ctx, unified=config.kv_unified)
        self.slots = SlotTable(self.ctx, config.n_slots, unified=config.kv_unified, min_copy=min_copy)
        self.waiting: list[tuple[tuple[int, int], ActiveRequest]] = []
        self.running: list[ActiveRequest] = []
        self.inflight: dict[int, int] = {}
        self._kv_pressure = False
        self.before_decode: Callable[[], None] = _nothing  # the runtime hands events over here
        metrics.n_slots = config.n_slots
        metrics.kv_cells_total = config.total_kv

    # -- admission ---------------------------------------------------------------

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, req: ActiveRequest) -> None:
        """Prepare a submitted request (tokenize, check, build its sampler) and queue it."""
        try:
            self._prepare(req)
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the loop
            req.finish(FinishReason.ERROR, time.monotonic(), _as_llamarun_error(exc))
            self.metrics.record_outcome(FinishReason.ERROR.value)
            return
        if req.max_new == 0:
            self._finish(req, FinishReason.LENGTH)
            return
        heapq.heappush(self.waiting, (req.sort_key(), req))

    def _prepare(self, req: ActiveRequest) -> None:
        spec, vocab = req.spec, self.model.vocab
        if isinstance(spec.prompt, str):
            tokens = vocab.tokenize(spec.prompt, add_special=spec.add_special, parse_special=spec.parse_special)
        elif isinstance(spec.prompt, PromptSegments):
            tokens = vocab.tokenize_parts(spec.prompt.parts, add_special=spec.add_special)
        else:
            tokens = list(spec.prompt)
            for token in tokens:
                vocab.check_token(token)
        if not tokens:
            if vocab.bos < 0:
                raise InvalidParameterError("prompt is empty", field="prompt")
            tokens = [vocab.bos]
        limit = self.config.n_ctx - 1  # room for at least one generated token
        if len(tokens) > limit:
            if not spec.truncate:
                raise ContextOverflowError(
                    f"prompt has {len(tokens)} tokens but the context holds {self.config.n_ctx} "
                    "(prompt plus output): shorten it, raise num_ctx, or ask for truncation",
                    n_prompt=len(tokens), n_ctx=self.config.n_ctx)
            target = limit - min(spec.max_tokens or limit // 4, limit // 2)
            tokens = truncate_prompt(tokens, target, spec.n_keep)
            req.truncated = True
        req.tokens = tokens
        req.n_prompt = len(tokens)
        req.sampler = SamplerChain(self.model, spec.sampling)
        req.detok = Detokenizer(vocab)
        self.metrics.prompt_tokens += len(tokens)

    def _admit_waiting(self, now: float) -> None:
        if not self.waiting:
            return  # most steps: nothing to place (taking no slots costs 30 us of slot bookkeeping)
        admitted: list[ActiveRequest] = []
        free = self.slots.free_count()
        while self.waiting and len(admitted) < free and not (self._kv_pressure and (self.running or admitted)):
            admitted.append(heapq.heappop(self.waiting)[1])
        if not admitted:
            return
        caches = self.slots.best_caches([r.tokens for r in admitted])
        if len(admitted) > 1 and not self.config.kv_unified:
            # Shorter prompts take lower slots.  llama.cpp splits a batch over per-slot KV streams
            # into passes that each take the same number of tokens from a run of consecutive
            # sequence ids; with lengths rising along the slots that is one pass per distinct
            # length, where mixed lengths cost an extra pass over the model for every gap.
            order = sorted(range(len(admitted)), key=lambda i: len(admitted[i].tokens) - caches[i][1])
            admitted, caches = [admitted[i] for i in order], [caches[i] for i in order]
        placed = self.slots.acquire_all([r.tokens for r in admitted], caches)
        for req, (slot, reused) in zip(admitted, placed, strict=True):
            req.slot = slot.seq_id
            req.n_past = reused
            if req.clock.started is None:
                req.clock.started = now
                req.cached_tokens = reused
                self.metrics.prefix_tokens_reused += reused
            req.status = RequestStatus.RUNNING
            self.running.append(req)

    def _close_gaps(self) -> None:
        """Keep busy slots consecutive (one pass per step with per-slot KV streams) by moving requests down.

        A move copies one KV stream (a few ms); a gap costs an extra pass over
        the model on every step, so only requests with steps left to run move.
        """
        while (move := self.slots.gap_move()) is not None:
            src, dst = move
            req = next(r for r in self.running if r.slot == src.seq_id)
            if req.max_new is not None and req.remaining - 1 + req.max_new - len(req.generated) < _MOVE_MIN_STEPS:
                return  # about to finish: its gap closes by itself
            self.slots.move(src, dst)
            req.slot = dst.seq_id
            self.metrics.slot_moves += 1

    # -- one step ----------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        self._expire(now)
        self._admit_waiting(now)
        self._close_gaps()
        self.update_gauges()
        work = self._plan()
        self.before_decode()
        if not work:
            return
        self.inflight = {w.req.id: w.count for w in work}
        self.ctx.clear_abort()
        try:
            self.ctx.decode(self.batch)
        except KVCacheFullError:
            self._on_kv_full()
            return
        except DecodeAbortedError:
            self.metrics.aborted_decodes += 1
            self._rollback(work)
            return
        except DecodeError as exc:
            if exc.code is not None and exc.code < -1:
                raise  # fatal: the engine dies, every request fails
            self._rollback(work)
            for w in work:
                self._finish(w.req, FinishReason.ERROR, exc)
            return
        finally:
            self.inflight = {}
        self.metrics.steps += 1
        self._after_decode(work, time.monotonic())

    def _plan(self) -> list[_Work]:
        """Choose this step's tokens by priority, then write them to the batch in slot order.

        With one KV stream per slot llama.cpp computes a batch in one pass only
        when its sequences come in increasing, consecutive ids; any other order
        splits it into several passes over the whole model.
        """
        budget = self.batch.capacity
        chosen: list[tuple[ActiveRequest, int]] = []
        ordered = sorted(self.running, key=ActiveRequest.sort_key)
        for req in ordered:  # next token of every decoding sequence first
            if req.remaining == 1 and budget > 0:
                chosen.append((req, 1))
                budget -= 1
        for req in ordered:  # then chunks of prompts (chunked prefill)
            if req.remaining > 1 and budget > 0:
                count = min(req.remaining, budget)
                chosen.append((req, count))
                budget -= count
        chosen.sort(key=lambda item: item[0].slot)
        batch = self.batch
        batch.clear()
        work: list[_Work] = []
        for req, count in chosen:
            start = req.n_past
            last = start + count == len(req.tokens)
            index = batch.add_tokens(req.tokens[start:start + count], start, req.slot, logits_last=last)
            work.append(_Work(req, start, count, index if last else -1))
        return work

    def _after_decode(self, work: list[_Work], now: float) -> None:
        sampled: list[_Work] = []
        for w in work:
            req = w.req
            self.slots.commit(self.slots.slots[req.slot], req.tokens[w.start:w.start + w.count])
            req.n_past += w.count
            if w.index < 0:
                continue
            if not req.generated and req.clock.prefill_s == 0.0 and req.clock.started is not None:
                req.clock.prefill_s = now - req.clock.started
            sampled.append(w)
        logprobs = [self._row_logprobs(w) for w in sampled]
        tokens = sample_rows([w.req.sampler for w in sampled], self.ctx, [w.index for w in sampled], self._draw)
        for w, token, lp in zip(sampled, tokens, logprobs, strict=True):
            try:
                for outcome in (token, lp):
                    if isinstance(outcome, Exception):
                        raise outcome
                self._on_token(w.req, token, now, lp)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - isolate the failure to this request
                logger.exception("request %d failed while sampling", w.req.id)
                self._finish(w.req, FinishReason.ERROR, _as_llamarun_error(exc))

    def _on_token(self, req: ActiveRequest, token: int, now: float, logprobs: np.ndarray | None) -> None:
        clock = req.clock
        if clock.first_token is None:
            clock.first_token = now
            self.metrics.ttft.append(now - clock.submitted)
        elif clock.last_token is not None:
            self.metrics.itl.append(now - clock.last_token)
        clock.last_token = now
        if self.model.vocab.is_eog(token) and not req.spec.ignore_eos:
            self._finish(req, FinishReason.STOP)
            return
        req.generated.append(token)
        req.tokens.append(token)
        self.metrics.generated_tokens += 1
        text, hit = req.stops.push(req.detok.push(token))
        lp = () if logprobs is None else (_token_logprob(logprobs, token, req.spec.logprobs),)
        req.emit(text, (token,), lp)
        if hit:
            self._finish(req, FinishReason.STOP)
        elif req.max_new is not None and len(req.generated) >= req.max_new:
            self._finish(req, FinishReason.LENGTH)
        elif len(req.tokens) >= self.config.n_ctx:
            self._finish(req, FinishReason.LENGTH)

    def _row_logprobs(self, w: _Work) -> np.ndarray | Exception | None:
        if not w.req.spec.logprobs:
            return None
        try:
            return self._logprobs(w.index)
        except Exception as exc:  # noqa: BLE001 - kept to this request
            return exc

    def _logprobs(self, index: int) -> np.ndarray:
        logits = self.ctx.logits(index).astype(np.float64)
        logits -= logits.max()
        logits -= math.log(np.exp(logits).sum())
        return logits

    # -- endings ---------------------------------------------------------------

    def _finish(self, req: ActiveRequest, reason: FinishReason, error: BaseException | None = None) -> None:
        if req.status.finished:
            return
        if req in self.running:
            self.running.remove(req)
        else:
            self.waiting = [(k, r) for k, r in self.waiting if r is not req]
            heapq.heapify(self.waiting)
        if req.slot is not None:
            slot = self.slots.slots[req.slot]
            if len(slot.cached) > req.n_past:  # partial state from an aborted decode
                self.slots.rollback(slot, req.n_past)
            self.slots.release(slot)
            req.slot = None
        self._kv_pressure = False
        try:
            req.finish(reason, time.monotonic(), error)
        except Exception:  # noqa: BLE001 - a broken sink must not stop the loop
            logger.exception("delivering the end of request %d failed", req.id)
        self.metrics.record_outcome(reason.value)

    def _expire(self, now: float) -> None:
        for req in [*self.running, *(r for _, r in self.waiting)]:
            if req.cancelled.is_set():
                self._finish(req, FinishReason.CANCELLED)
            elif now >= req.deadline:
                self._finish(req, FinishReason.DEADLINE)

    def _rollback(self, work: list[_Work]) -> None:
        """Undo what an aborted or failed decode left in the KV cache."""
        for w in work:
            if w.req.slot is not None:
                self.slots.rollback(self.slots.slots[w.req.slot], w.req.n_past)

    def _on_kv_full(self) -> None:
        """Free idle caches; if there are none, preempt the least important running request."""
        self._kv_pressure = True
        if self.slots.evict_idle():
            return
        if len(self.running) <= 1:
            for req in list(self.running):
                self._finish(req, FinishReason.LENGTH)
            return
        victim = max(self.running, key=ActiveRequest.sort_key)
        slot = self.slots.slots[victim.slot]
        self.slots.clear(slot)
        self.slots.release(slot)
        self.running.remove(victim)
        victim.slot = None
        victim.n_past = 0
        victim.status = RequestStatus.WAITING
        heapq.heappush(self.waiting, (victim.sort_key(), victim))
        self.metrics.preemptions += 1
        logger.info("KV cache full: preempted request %d (%d tokens to recompute)", victim.id, len(victim.tokens))

    def cancel_all(self) -> None:
        for req in [*self.running, *(r for _, r in self.waiting)]:
            self._finish(req, FinishReason.CANCELLED)

    def fail_all(self, error: BaseException) -> None:
        for req in [*self.running, *(r for _, r in self.waiting)]:
            self._finish(req, FinishReason.ERROR, error)

    def update_gauges(self) -> None:
        m = self.metrics
        m.queue_depth = len(self.waiting)
        m.running = len(self.running)
        m.kv_cells_used = self.slots.cells_used()

    def close(self) -> None:
        for handle in (self.batch, self.ctx):
            handle.close()


def _token_logprob(logprobs: np.ndarray, token: int, top: int) -> TokenLogprob:
    best = np.argpartition(logprobs, -top)[-top:]
    best = best[np.argsort(logprobs[best])[::-1]]
    return TokenLogprob(token, float(logprobs[token]), tuple((int(t), float(logprobs[t])) for t in best))


def _as_llamarun_error(exc: BaseException) -> LlamarunError:
    if isinstance(exc, LlamarunError):
        return exc
    error = LlamarunError(f"request failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
