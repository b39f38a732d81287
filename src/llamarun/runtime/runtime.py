"""A loaded model served by its own engine thread, with bounded admission."""

from __future__ import annotations

import enum
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..engine import Model, ModelInfo, open_model, release_free_heap
from ..errors import ClosedHandleError, EngineDeadError, OverloadedError
from .config import RuntimeConfig
from .handoff import Flusher, Handoff
from .loop import EngineLoop
from .messages import CallEngine, CallModel, InboxMessage, Stop, Submit
from .metrics import MetricsSnapshot, RuntimeMetrics
from .request import GenerationRequest
from .sequence import ActiveRequest, Sink
from .status import FinishedRequest, RuntimeStatus, finished_record, read_status

__all__ = ["Health", "HealthStatus", "Runtime"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
_RECENT_REQUESTS = 256
F = TypeVar("F", bound=Flusher)


class HealthStatus(str, enum.Enum):
    LOADING = "loading"
    OK = "ok"
    STOPPING = "stopping"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    running: int
    waiting: int
    n_slots: int
    error: str | None = None


class Runtime:
    """Loads a model on a new engine thread and serves requests on it.

    Only the engine thread calls llama.cpp: :meth:`submit`, :meth:`cancel` and
    :meth:`call` hand work over through a queue.  The waiting queue is bounded
    (``config.max_queue``): beyond it :meth:`submit` raises
    :class:`OverloadedError` at once, with a retry-after hint.
    """

    def __init__(self, model_path: str | Path, config: RuntimeConfig | None = None, *, name: str = "") -> None:
        self.config = config or RuntimeConfig()
        self.name = name or Path(model_path).name
        self.metrics = RuntimeMetrics()
        self._model_path = str(model_path)
        self._cond = threading.Condition()
        self._inbox: deque[InboxMessage] = deque()
        self._requests: dict[int, ActiveRequest] = {}
        self._recent: deque[FinishedRequest] = deque(maxlen=_RECENT_REQUESTS)  # for status(): no text but
        # the start of the prompt with config.log_prompts
        self._accepting = True
        self._closed = False  # close() has finished: nothing will ever run here again
        self._status = HealthStatus.LOADING
        self._error: BaseException | None = None
        self._loop: EngineLoop | None = None
        self._handoff = Handoff()
        self._ready: Future[ModelInfo] = Future()
        self._thread = threading.Thread(target=self._run, name=f"llamarun-engine-{self.name}", daemon=True)
        self._thread.start()
        self.info: ModelInfo = self._ready.result()  # re-raises a load failure here

    # -- public API (any thread) ---------------------------------------------

    @property
    def model_path(self) -> str:
        return self._model_path

    def submit(self, spec: GenerationRequest, sink: Sink) -> int:
        """Queue a generation; events go to ``sink`` from the engine thread. Returns its id."""
        req = ActiveRequest(spec, sink)
        with self._cond:
            self._check_alive()
            self._check_room(1)
            self._requests[req.id] = req
            self._inbox.append(Submit(req))
            self._cond.notify()
        return req.id

    def check_room(self, n: int = 1) -> None:
        """:class:`OverloadedError` now when ``n`` more requests would not fit in the slots and the
        queue: a frontend asks before it spends time on a request's prompt (``submit`` checks again)."""
        with self._cond:
            self._check_alive()
            self._check_room(n)

    def cancel(self, request_id: int) -> None:
        """Stop a request; its slot is free at the latest one step later."""
        req = self._requests.get(request_id)
        if req is None:
            return
        req.cancelled.set()
        loop = self._loop
        if loop is not None:
            inflight = loop.inflight
            share = inflight.get(request_id, 0)
            if share > 1 and share * 2 >= sum(inflight.values()):
                loop.ctx.abort()  # a long prefill of this request: interrupt the decode itself
        with self._cond:
            self._cond.notify()

    def call(self, fn: Callable[[Model], T]) -> T:
        """Run ``fn(model)`` on the engine thread (tokenize, detokenize, ...) and return its result."""
        future: Future[T] = Future()
        with self._cond:
            self._check_alive()
            self._inbox.append(CallModel(fn, future))
            self._cond.notify()
        return future.result()

    def call_engine(self, fn: Callable[[EngineLoop], T]) -> T:
        """Run ``fn(loop)`` on the engine thread between steps (KV state operations: sessions)."""
        future: Future[T] = Future()
        with self._cond:
            self._check_alive()
            self._inbox.append(CallEngine(fn, future))
            self._cond.notify()
        return future.result()

    def flusher(self, key: object, factory: Callable[[], F]) -> F:
        """The :class:`Flusher` registered under ``key``, made by ``factory`` the first time.

        The engine thread flushes every registered one as it starts each
        decode and before it idles: see :mod:`.handoff`.
        """
        return self._handoff.flusher(key, factory)

    def health(self) -> Health:
        m = self.metrics
        return Health(self._status, m.running, m.queue_depth, self.config.n_slots,
                      str(self._error) if self._error else None)

    def snapshot(self) -> MetricsSnapshot:
        return self.metrics.snapshot()

    def status(self) -> RuntimeStatus:
        """What each slot is doing now, the waiting requests and the recent finished ones (any thread)."""
        return read_status(self._loop, list(self._recent))

    def close(self, timeout: float = 0.0) -> None:
        """Stop admitting; let in-flight requests finish for ``timeout`` seconds, cancel the rest,
        then free all native memory. Safe to call more than once."""
        with self._cond:
            self._accepting = False
            if self._status == HealthStatus.OK:
                self._status = HealthStatus.STOPPING
            self._cond.notify()
        deadline = time.monotonic() + max(0.0, timeout)
        while self._requests and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        for request_id in list(self._requests):
            self.cancel(request_id)
        with self._cond:
            self._inbox.append(Stop())
            self._cond.notify()
        self._thread.join()
        if not self._closed:
            self._closed = True
            self._release_memory()

    @staticmethod
    def _release_memory() -> None:
        """Give back what the closed engine held: its objects left in reference cycles (ctypes
        array types, the model and its vocabulary) are collected now rather than at some later
        collection, then the C heap's free pages (the model's buffers among them) leave the
        process's resident memory (glibc ``malloc_trim``).  Without the collection, 200
        load/generate/close cycles held 0.7-1.9% more RSS at the end (the garbage of several cycles
        alive at once spread over more allocator arenas, some kept); with it 0.16-0.18%.  A full
        collection takes about 0.15 s in a process of 260,000 objects, once per model unload."""
        gc.collect()
        release_free_heap()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._closed:  # not retryable: this handle is gone for good
            raise ClosedHandleError(f"{self.name} is closed; load the model again")
        if self._status == HealthStatus.ERROR:
            raise EngineDeadError(f"the engine of {self.name} died ({self._error}); reload the model")
        if not self._accepting:
            raise OverloadedError(f"{self.name} is shutting down", retry_after=5.0)

    def _check_room(self, n: int) -> None:
        outstanding = len(self._requests)
        if outstanding + n > self.config.max_queue + self.config.n_slots:
            waiting = outstanding - self.config.n_slots
            raise OverloadedError(f"{self.name} is busy: {max(0, waiting)} requests are already waiting; retry later",
                                  retry_after=self._retry_after(waiting))

    def _retry_after(self, waiting: int) -> float:
        """Seconds until a slot is likely free: the queue ahead divided among the slots."""
        return float(min(60.0, max(1.0, waiting / max(1, self.config.n_slots))))

    def _run(self) -> None:
        try:
            model = open_model(self._model_path, self.config)
            loop = EngineLoop(model, self.config, self.metrics)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            self._status = HealthStatus.ERROR
            self._error = exc
            self._ready.set_exception(exc)
            return
        self._loop = loop
        loop.before_decode = self._handoff.flush
        self._status = HealthStatus.OK
        self._ready.set_result(model.info)
        try:
            self._serve(loop)
        except BaseException as exc:  # noqa: BLE001 - the engine died: fail everything, say so in health
            logger.exception("engine thread of %s died", self.name)
            self._error = exc
            self._status = HealthStatus.ERROR
            dead = EngineDeadError(f"the engine of {self.name} died: {exc}")
            with self._cond:
                held = list(self._requests.values())
            loop.fail_all(dead, held)
            self._fail_inbox(dead)
        finally:
            self._handoff.flush()
            self._handoff.close()
            self._loop = None
            loop.close()
            model.close()
            if self._status == HealthStatus.ERROR:
                release_free_heap()  # a dead engine's pages go back now; a closed one's in close(), after its cycles
            else:
                self._status = HealthStatus.STOPPED

    def _serve(self, loop: EngineLoop) -> None:
        while True:
            if not loop.has_work():
                self._handoff.flush()
            with self._cond:
                while not self._inbox and not loop.has_work():
                    self._cond.wait()
                items = list(self._inbox)
                self._inbox.clear()
            for message in items:
                match message:
                    case Stop():
                        loop.cancel_all()
                        return
                    case Submit(request):
                        loop.add(request)
                    case CallModel(fn, future):
                        _settle(future, fn, loop.model)
                    case CallEngine(fn, future):
                        _settle(future, fn, loop)
            if loop.has_work():
                loop.step()  # updates the gauges before its decode
            if not loop.has_work():
                loop.update_gauges()  # idle from here: the gauges show what the last step finished
            self._forget_finished()

    def _forget_finished(self) -> None:
        log_prompt = self.config.log_prompts
        detokenize = self._detokenize if log_prompt else None
        with self._cond:
            now = time.monotonic()
            for request_id in [i for i, r in self._requests.items() if r.status.finished]:
                self._recent.append(finished_record(self._requests.pop(request_id), now, log_prompt=log_prompt,
                                                    detokenize=detokenize))

    def _detokenize(self, tokens: list[int]) -> str:
        """A token-id prompt's text for status() (engine thread; special tokens written out)."""
        loop = self._loop
        return loop.model.detokenize(tokens, special=True) if loop is not None else ""

    def _fail_inbox(self, error: BaseException) -> None:
        with self._cond:
            items = list(self._inbox)
            self._inbox.clear()
        for message in items:
            match message:
                case Submit(request):
                    request.sink(error)
                case CallModel(_, future) | CallEngine(_, future):
                    future.set_exception(error)


def _settle(future: Future[T], fn: Callable[[A], T], arg: A) -> None:
    """Run ``fn(arg)`` and hand its result or exception to ``future``."""
    try:
        future.set_result(fn(arg))
    except BaseException as exc:  # noqa: BLE001 - returned to the caller
        future.set_exception(exc)
