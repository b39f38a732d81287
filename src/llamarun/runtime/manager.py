"""The model manager: which models are loaded, with what settings, and for how long.

Frontends ask for a model by name with :meth:`ModelManager.acquire` and get a
:class:`Lease` (release it when the request is done).  The manager

- loads a model on first use (one load per model even when many requests ask at once);
- bounds a request's load options (context size, threads, batch size, GPU layers:
  :class:`LoadOptions`) by the operator's ceiling and the machine's cores
  (:mod:`.load_policy`), and, only when ``allow_request_reload`` is set, reloads a
  model for a request that needs other settings, once the requests using the old
  settings are done (otherwise such a request is refused with a 400 naming the option);
- keeps several models loaded, up to ``max_loaded_models`` and a memory budget,
  unloading the least recently used idle model to make room (a request waits,
  up to ``wait_timeout``, while every loaded model is busy);
- unloads a model ``keep_alive`` seconds after its last request (0: at once,
  negative: never, at most ``MAX_KEEP_ALIVE``), each request setting the model's
  keep_alive (Ollama's rule); the reaper thread logs any error it meets and goes on.

All methods are thread-safe and blocking (loading takes seconds): asyncio
frontends call them through an executor.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import MAX_KEEP_ALIVE
from ..errors import InsufficientMemoryError, InvalidParameterError, OverloadedError
from .config import ManagerConfig, RuntimeConfig
from .embed import Embedder
from .load_policy import (
    HardwareCache,
    Limits,
    LoadOptions,
    Planner,
    available_budget,
    check_limits,
    check_served,
    hardware_limits,
    hardware_planner,
)
from .leases import Lease, ModelSource, ModelStatus
from .runtime import HealthStatus, Runtime

__all__ = ["ModelManager"]

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    LOADING = "loading"
    READY = "ready"


@dataclass(eq=False)
class _Entry:
    source: ModelSource
    config: RuntimeConfig
    est_bytes: int
    keep_alive: float
    options: LoadOptions = field(default_factory=LoadOptions)
    state: _State = _State.LOADING
    runtime: Runtime | None = None
    embedder: Embedder | None = None
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float | None = None  # monotonic; None while in use or when kept forever
    loaded_at: float = field(default_factory=time.time)

    def usable_for(self, source: ModelSource, options: LoadOptions) -> bool:
        runtime = self.runtime
        return (runtime is not None and source.path == self.source.path
                and options.matches(self.config, self.options)
                and runtime.health().status == HealthStatus.OK)


class ModelManager:
    """Loads, shares, reloads and unloads models for every frontend of one process."""

    def __init__(self, config: ManagerConfig | None = None, *, resolve: Callable[[str], ModelSource],
                 planner: Planner | None = None, memory: Callable[[], int] | None = None,
                 limits: Limits | None = None) -> None:
        self.config = config or ManagerConfig()
        self._resolve = resolve
        hardware = HardwareCache()
        self._plan = planner or hardware_planner(hardware)
        self._limits = limits or hardware_limits(hardware)
        self._memory = memory or available_budget
        self._cond = threading.Condition(threading.Lock())
        self._entries: dict[str, _Entry] = {}
        self._closing: list[_Entry] = []
        self._closed = False
        self._reaper: threading.Thread | None = None
        self.counters = {"loads": 0, "load_failures": 0, "unloads": 0, "evictions": 0}

    # -- public API ------------------------------------------------------------

    def resolve(self, name: str) -> ModelSource:
        return self._resolve(name)

    def acquire(self, name: str, options: LoadOptions | None = None, *, keep_alive: float | None = None,
                timeout: float | None = None) -> Lease:
        """Hold model ``name`` (loading or reloading it as needed) for one request."""
        asked = options or LoadOptions()
        keep = _keep_alive(self.config.keep_alive if keep_alive is None else keep_alive)
        source = self._resolve(name)
        own = LoadOptions.of_model(source)  # the model's Modelfile: the operator's per-model settings
        for given in (own, asked):
            if given.given:
                check_limits(given, self._limits(source, self.config), source.name)
        # without reloads a request is served by the settings the model loads with, or refused
        options = asked.over(own) if self.config.allow_request_reload else own
        deadline = time.monotonic() + (self.config.wait_timeout if timeout is None else timeout)
        started = time.monotonic()
        planned: tuple[RuntimeConfig, int] | None = None
        with self._cond:
            while True:
                self._check_open()
                entry = self._entries.get(source.name)
                if entry is not None and entry.state is _State.LOADING:
                    self._wait(deadline, f"model {source.name} is still loading")
                    continue
                if entry is not None and entry.usable_for(source, options):
                    if not self.config.allow_request_reload:
                        check_served(asked, entry.config, source.name)
                    return self._lease(entry, keep, 0.0)
                if entry is not None:  # other settings, another file, or a dead engine: reload
                    if entry.leases:
                        self._wait(deadline, f"model {source.name} is busy with other settings")
                        continue
                    self._evict([entry])
                    continue
                if planned is None:
                    planned = self._plan_locked(source, options)
                    continue  # the lock was released while planning: look again
                config, est = planned
                if not self.config.allow_request_reload:
                    check_served(asked, config, source.name)
                victims = self._victims(source.name, est)
                if victims is None:
                    self._wait(deadline, "every loaded model is busy; no room to load another")
                    continue
                if victims:
                    self._evict(victims)
                    continue
                break
            entry = _Entry(source, config, est, keep, options)
            self._entries[source.name] = entry
        self._load(entry)
        with self._cond:
            return self._lease(entry, keep, time.monotonic() - started)

    def unload(self, name: str) -> bool:
        """Unload a model now (or after its current requests when busy). False if not loaded."""
        try:
            key = self._resolve(name).name
        except Exception:  # noqa: BLE001 - an unknown name is simply not loaded
            key = name
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                return False
            entry.keep_alive = 0.0
            if entry.state is _State.READY and not entry.leases:
                self._evict([entry], counter="unloads")
            return True

    def status(self) -> list[ModelStatus]:
        now_mono, now_wall = time.monotonic(), time.time()
        with self._cond:
            entries = list(self._entries.values())
        result = []
        for e in entries:
            expires = None if e.expires_at is None else now_wall + (e.expires_at - now_mono)
            runtime = e.runtime
            result.append(ModelStatus(
                name=e.source.name, path=e.source.path, digest=e.source.digest, state=e.state.value,
                config=e.config, size_bytes=e.est_bytes, in_use=e.leases, expires_at=expires,
                loaded_at=e.loaded_at, info=runtime.info if runtime else None,
                health=runtime.health() if runtime else None))
        return result

    def runtimes(self) -> list[tuple[str, Runtime]]:
        with self._cond:
            return [(e.source.name, e.runtime) for e in self._entries.values() if e.runtime is not None]

    @property
    def loading(self) -> bool:
        with self._cond:
            return any(e.state is _State.LOADING for e in self._entries.values())

    def close(self, timeout: float = 0.0) -> None:
        """Stop loading; give in-flight requests ``timeout`` seconds, then unload everything."""
        with self._cond:
            self._closed = True
            entries = [e for e in self._entries.values() if e.state is _State.READY]
            for e in entries:
                del self._entries[e.source.name]
            self._cond.notify_all()
        threads = [threading.Thread(target=self._close_entry, args=(e, timeout), daemon=True) for e in entries]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=5)

    # -- internals (call with the lock held unless said otherwise) ---------------

    def _check_open(self) -> None:
        if self._closed:
            raise OverloadedError("the server is shutting down", retry_after=5.0)

    def _wait(self, deadline: float, why: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OverloadedError(f"{why}; retry later", retry_after=5.0)
        self._cond.wait(min(remaining, 1.0))

    def _lease(self, entry: _Entry, keep_alive: float, load_s: float) -> Lease:
        entry.leases += 1
        entry.last_used = time.monotonic()
        entry.expires_at = None
        entry.keep_alive = keep_alive
        assert entry.runtime is not None
        lease = Lease(entry.runtime, entry.source, entry.config,
                      release=lambda: self._release(entry), embedder=lambda: self._embedder(entry))
        lease.load_s = load_s
        return lease

    def _in_use_bytes(self, exclude: str = "") -> int:
        return sum(e.est_bytes for e in [*self._entries.values(), *self._closing] if e.source.name != exclude)

    def _budget(self) -> int:
        if self.config.memory_budget:
            return self.config.memory_budget
        return self._memory() + self._in_use_bytes()

    def _plan_locked(self, source: ModelSource, options: LoadOptions) -> tuple[RuntimeConfig, int]:
        budget = self._budget()
        self._cond.release()  # reading the GGUF header takes a moment: let others proceed
        try:
            return self._plan(source, options, self.config, budget)
        finally:
            self._cond.acquire()

    def _victims(self, name: str, est: int) -> list[_Entry] | None:
        """Idle models to unload (least recently used first) so that ``est`` more bytes and one
        more model fit; None when that needs a busy model to finish first."""
        budget = self._budget()
        count = len(self._entries) + len(self._closing)
        used = self._in_use_bytes(exclude=name)
        idle = sorted((e for e in self._entries.values() if e.state is _State.READY and not e.leases),
                      key=lambda e: e.last_used)
        victims: list[_Entry] = []
        while count + 1 > self.config.max_loaded_models or used + est > budget:
            if not idle:
                if count == 0:
                    raise InsufficientMemoryError(
                        f"model {name} needs about {est >> 20} MiB but the memory budget is {budget >> 20} MiB")
                return None
            victim = idle.pop(0)
            victims.append(victim)
            count -= 1
            used -= victim.est_bytes
        return victims

    def _evict(self, entries: list[_Entry], counter: str = "evictions") -> None:
        """Unload ``entries`` (idle) outside the lock; their memory counts until they are closed."""
        for e in entries:
            del self._entries[e.source.name]
            self._closing.append(e)
            self.counters[counter] += 1
        self._cond.release()
        try:
            for e in entries:
                logger.info("unloading %s", e.source.name)
                self._close_entry(e, 0.0)
        finally:
            self._cond.acquire()
            for e in entries:
                self._closing.remove(e)
            self._cond.notify_all()

    def _load(self, entry: _Entry) -> None:
        """Start the entry's runtime (outside the lock)."""
        logger.info("loading %s from %s (n_ctx=%d, slots=%d)", entry.source.name, entry.source.path,
                    entry.config.n_ctx, entry.config.n_slots)
        try:
            runtime = Runtime(entry.source.path, entry.config, name=entry.source.name)
        except BaseException:
            with self._cond:
                self._entries.pop(entry.source.name, None)
                self.counters["load_failures"] += 1
                self._cond.notify_all()
            raise
        with self._cond:
            entry.runtime = runtime
            entry.state = _State.READY
            self.counters["loads"] += 1
            closed = self._closed
            self._ensure_reaper()
            self._cond.notify_all()
        if closed:  # shut down while loading
            runtime.close()
            self._check_open()

    def _embedder(self, entry: _Entry) -> Embedder:
        with self._cond:
            if entry.embedder is None:
                assert entry.runtime is not None
                entry.embedder = Embedder(entry.runtime, n_ctx=entry.config.n_ctx, n_threads=entry.config.n_threads)
            return entry.embedder

    def _release(self, entry: _Entry) -> None:
        with self._cond:
            entry.leases -= 1
            entry.last_used = time.monotonic()
            if entry.leases == 0 and entry.keep_alive >= 0:
                entry.expires_at = entry.last_used + entry.keep_alive
            self._cond.notify_all()

    @staticmethod
    def _close_entry(entry: _Entry, timeout: float) -> None:
        if entry.embedder is not None:
            entry.embedder.close()
        if entry.runtime is not None:
            entry.runtime.close(timeout)

    # -- keep_alive ----------------------------------------------------------------

    def _ensure_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="llamarun-model-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        """Unload models whose keep_alive has run out (its own thread, which survives any error)."""
        with self._cond:
            while not self._closed:
                try:
                    self._reap_once()
                except Exception:  # noqa: BLE001 - one bad unload must not stop every later one
                    logger.exception("the model reaper met an error; it keeps going")
                    self._cond.wait(1.0)

    def _reap_once(self) -> None:
        now = time.monotonic()
        expired = [e for e in self._entries.values()
                   if e.state is _State.READY and not e.leases and e.expires_at is not None and e.expires_at <= now]
        if expired:
            self._evict(expired, counter="unloads")
            return
        pending = [e.expires_at for e in self._entries.values() if e.expires_at is not None and not e.leases]
        self._cond.wait(min(_REAPER_WAKE, min(pending) - now) if pending else _REAPER_WAKE)


_REAPER_WAKE = 3600.0  # the reaper looks at least this often (seconds), whatever the timers say


def _keep_alive(value: float) -> float:
    """A keep_alive the timers can hold: negative = forever (-1), above MAX_KEEP_ALIVE refused."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise InvalidParameterError(f"keep_alive must be a number of seconds, got {value!r}", field="keep_alive")
    if value < 0:
        return -1.0
    if value > MAX_KEEP_ALIVE:
        raise InvalidParameterError(
            f"keep_alive must be at most {MAX_KEEP_ALIVE:.0e} seconds, got {value!r}; "
            "use a negative value to keep the model loaded forever", field="keep_alive")
    return float(value)
