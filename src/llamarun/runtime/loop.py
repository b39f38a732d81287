"""The engine loop, the executor of one model: each step asks the scheduler for a plan, decodes it
once, samples, delivers, and hands the results back.

Everything here runs on the model's engine thread, the only thread that calls
llama.cpp for this model.  The policy (queues, slots, token budget, preemption)
lives in :class:`~llamarun.runtime.scheduler.Scheduler`; this module keeps what
touches the model: tokenizing, the batch, the decode and what its failures mean,
sampling, detokenizing and the output to each request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

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
from ..types import FinishReason, PromptSegments, TokenLogprob
from .config import RuntimeConfig
from .drafting import Speculator, write_drafts
from .metrics import RuntimeMetrics
from .scheduler import Ending, Scheduler, StepPlan, Work
from .sequence import ActiveRequest
from .slots import copy_threshold
from .statecache import perform_restores
from .tiering import runtime_tiers

__all__ = ["EngineLoop"]

logger = logging.getLogger(__name__)


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
        self.ctx = Context(model, config.context_options())  # the KV-cache types included
        self.batch = Batch(self.ctx.n_batch, 1)  # llama.cpp may clamp n_batch to the context
        self._draw = DrawBuffer(model.vocab.n_tokens)  # scratch rows for drawing every sequence's token at once
        min_copy = config.min_prefix_copy or copy_threshold(model.info, config.n_ctx, unified=config.kv_unified)
        self.scheduler = Scheduler(self.ctx, config.n_slots, budget=self.batch.capacity, n_ctx=config.n_ctx,
                                   unified=config.kv_unified, min_copy=min_copy, metrics=metrics)
        self.tiers = runtime_tiers(config, metrics)  # saved KV states of conversations out of their slots
        if self.tiers.enabled and getattr(self.ctx, "saves_sequence_state", True):  # not the NumPy backend
            self.scheduler.use_tiers(self.tiers)
        self.speculator = Speculator(model, config, metrics)  # loads the draft model, if any
        self.inflight: dict[int, int] = {}
        self.before_decode: Callable[[], None] = _nothing  # the runtime hands events over here
        metrics.n_slots = config.n_slots
        metrics.kv_cells_total = config.total_kv

    # -- admission ---------------------------------------------------------------

    def has_work(self) -> bool:
        return self.scheduler.has_work()

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
        self.scheduler.add(req)

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
        self.speculator.setup(req)
        req.sampler = SamplerChain(self.model, spec.sampling)
        req.detok = Detokenizer(vocab)
        self.metrics.prompt_tokens += len(tokens)

    # -- one step ----------------------------------------------------------------

    def step(self) -> None:
        plan = self.scheduler.schedule(time.monotonic())
        self._deliver(plan.ended)
        if plan.restores:
            perform_restores(plan, self.ctx, self.scheduler.states, self.scheduler.slots.slots)  # type: ignore[arg-type]
        self.update_gauges()
        self.speculator.propose(plan.work, self.batch.capacity, queued=bool(self.scheduler.waiting))
        self._write_batch(plan.work)
        self.before_decode()
        work = plan.work
        if not work:
            return
        self.inflight = {w.req.id: w.count + len(w.draft) for w in work}
        self.ctx.clear_abort()
        started = time.perf_counter()
        try:
            self.ctx.decode(self.batch)
        except KVCacheFullError:
            self._deliver(self.scheduler.on_kv_full())
            return
        except DecodeAbortedError:
            self.metrics.aborted_decodes += 1
            self.scheduler.rollback(plan)
            return
        except DecodeError as exc:
            if exc.code is not None and exc.code < -1:
                raise  # fatal: the engine dies, every request fails
            self.scheduler.rollback(plan)
            for w in work:
                self._finish(w.req, FinishReason.ERROR, exc)
            return
        finally:
            self.inflight = {}
        self.metrics.steps += 1
        if all(w.count == 1 for w in work):  # decode steps only: a prefill's cost is another matter
            self.ctx.synchronize()  # with GPU layers the decode may return before its work is done
            self.speculator.observe(self.batch.n_tokens, time.perf_counter() - started)
        self._after_decode(plan, time.monotonic())

    def _write_batch(self, work: list[Work]) -> None:
        """The plan's tokens into the batch, in its (slot) order; each sampled share notes its logits row."""
        batch = self.batch
        batch.clear()
        for w in work:
            req, start = w.req, w.start
            row = batch.add_tokens(req.tokens[start:start + w.count], start, req.slot, logits_last=w.sample)
            if w.sample:
                w.row = row
            if w.draft:
                write_drafts(batch, w)

    def _after_decode(self, plan: StepPlan, now: float) -> None:
        sampled = self.scheduler.decoded(plan, now)
        drafted = [w for w in sampled if w.draft]
        if drafted:
            sampled = [w for w in sampled if not w.draft]
        logprobs = [self._row_logprobs(w) for w in sampled]
        tokens = sample_rows([w.req.sampler for w in sampled], self.ctx, [w.row for w in sampled], self._draw)
        for w, token, lp in zip(sampled, tokens, logprobs, strict=True):
            try:
                for outcome in (token, lp):
                    if isinstance(outcome, Exception):
                        raise outcome
                self._on_token(w.req, token, now, lp)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - isolate the failure to this request
                logger.exception("request %d failed while sampling", w.req.id)
                self._finish(w.req, FinishReason.ERROR, _as_llamarun_error(exc))
        for w in drafted:
            self._verify(w, now)

    def _verify(self, w: Work, now: float) -> None:
        """A speculative share: sample its rows while the drafts hold, cut the rest out of the KV,
        deliver the kept drafts and the sampled token one by one (each may end the request)."""
        req = w.req
        try:
            tokens, logprobs = self.speculator.verify(w, self.ctx, self._logprobs)
        except Exception as exc:  # noqa: BLE001 - isolate the failure to this request
            self.scheduler.keep_drafts(req, (), len(w.draft))
            logger.exception("request %d failed while sampling", req.id)
            self._finish(req, FinishReason.ERROR, _as_llamarun_error(exc))
            return
        self.scheduler.keep_drafts(req, tokens[:-1], len(w.draft))
        for token, lp in zip(tokens, logprobs, strict=True):
            if req.status.finished:
                return
            try:
                self._on_token(req, token, now, lp)
            except Exception as exc:  # noqa: BLE001 - isolate the failure to this request
                logger.exception("request %d failed while sampling", req.id)
                self._finish(req, FinishReason.ERROR, _as_llamarun_error(exc))
                return

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
        full = self.scheduler.append_token(req, token)
        self.metrics.generated_tokens += 1
        text, hit = req.stops.push(req.detok.push(token))  # type: ignore[union-attr]
        lp = () if logprobs is None else (_token_logprob(logprobs, token, req.spec.logprobs),)
        req.emit(text, (token,), lp)
        if hit:
            self._finish(req, FinishReason.STOP)
        elif full:
            self._finish(req, FinishReason.LENGTH)

    def _row_logprobs(self, w: Work) -> np.ndarray | Exception | None:
        if not w.req.spec.logprobs:
            return None
        try:
            return self._logprobs(w.row)
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
        self.scheduler.finish(req)
        self._end(req, reason, error)

    def _deliver(self, ended: list[Ending]) -> None:
        """Deliver the ends of requests the scheduler took off its queues."""
        for ending in ended:
            self._end(ending.req, ending.reason)

    def _end(self, req: ActiveRequest, reason: FinishReason, error: BaseException | None = None) -> None:
        # counted before the end is delivered: a caller that saw its request end finds it in the
        # metrics (counted after, a scrape could run first while this thread waited for the GIL)
        self.metrics.record_outcome(reason.value)
        try:
            req.finish(reason, time.monotonic(), error)
        except Exception:  # noqa: BLE001 - a broken sink must not stop the loop
            logger.exception("delivering the end of request %d failed", req.id)

    def cancel_all(self) -> None:
        for req in self.scheduler.requests():
            self._finish(req, FinishReason.CANCELLED)

    def fail_all(self, error: BaseException, held: Iterable[ActiveRequest] = ()) -> None:
        """End every request with ``error``: the scheduler's and ``held`` (the runtime's own list,
        which also has those a failed step had taken off the queue and not yet placed); the gauges
        then say nothing runs or waits (health reads them after the engine died)."""
        for req in [*self.scheduler.requests(), *held]:
            self._finish(req, FinishReason.ERROR, error)
        self.update_gauges()

    def update_gauges(self) -> None:
        self.scheduler.update_gauges()

    def close(self) -> None:
        self.tiers.close()
        for handle in (self.batch, self.ctx, self.speculator):
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
