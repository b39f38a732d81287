"""Running the app with uvicorn: port reporting, header limits, slow clients and a graceful drain.

On the first SIGTERM or SIGINT the server keeps listening but answers every
new request with 503 (``Retry-After``), lets in-flight requests finish for up
to ``shutdown_timeout`` seconds, cancels what is left, closes and exits 0.
A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from .config import HttpConfig
from .guard import ServerState
from .protocol import ConnectionLimits, guarded_protocol

__all__ = ["DrainingServer", "uvicorn_config"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SAME_SIGNAL_S = 0.25  # `timeout` and terminals may deliver one signal to the process twice


def uvicorn_config(app: Any, config: HttpConfig, *, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn's settings, with an h11 protocol that enforces the read timeouts and the
    connections per client address of ``config`` (:mod:`.protocol`)."""
    limits = ConnectionLimits(header_timeout=config.header_timeout, body_timeout=config.body_timeout,
                              max_connections_per_client=config.max_connections_per_client)
    return uvicorn.Config(
        app, host=config.host, port=config.port, http=guarded_protocol(limits), loop="asyncio", lifespan="on",
        h11_max_incomplete_event_size=config.max_header_bytes, log_level=log_level.lower(),
        timeout_graceful_shutdown=5, server_header=False, access_log=False, ws="none",
        timeout_keep_alive=5,
    )


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains on the first signal and exits at once on the second."""

    def __init__(self, config: uvicorn.Config, state: ServerState, *, shutdown_timeout: float,
                 on_started: Callable[[str, int], None] | None = None,
                 on_drain: Callable[[], None] | None = None,
                 on_drain_start: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_drain_start = on_drain_start  # told when the drain begins (other frontends drain too)
        self.state = state
        self.shutdown_timeout = shutdown_timeout
        self.on_started = on_started
        self.on_drain = on_drain
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._first_signal: float | None = None
        self.ready = threading.Event()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        self._loop = asyncio.get_running_loop()
        if self.started and self.servers:
            sock = self.servers[0].sockets[0]
            self.port = int(sock.getsockname()[1])
            if self.on_started is not None:
                self.on_started(self.config.host, self.port)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if self._first_signal is not None:
            if now - self._first_signal < _SAME_SIGNAL_S:  # one signal delivered twice (process group)
                return
            logger.warning("second signal: exiting now")
            logging.shutdown()
            os._exit(128 + signum)
        self._first_signal = now
        self.request_drain()

    def request_drain(self) -> None:
        """Start the graceful drain (thread-safe; what the first signal does)."""
        loop = self._loop
        if loop is None:
            self.should_exit = True
            return
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self.state.draining = True
            if self.on_drain_start is not None:
                self.on_drain_start()
            self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        logger.info("draining: %d request(s) in flight, up to %.0f s", self.state.inflight, self.shutdown_timeout)
        finished = await self.state.wait_idle(self.shutdown_timeout)
        if not finished:
            logger.warning("drain timeout: cancelling %d request(s)", self.state.inflight)
            if self.on_drain is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.on_drain)
            await self.state.wait_idle(5.0)
        self.should_exit = True
