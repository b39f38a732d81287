"""The bridge process: a Unix socket (and optionally a TCP port with a token) in front of one
:class:`~llamarun.serving.Service`, many clients at once, a bounded number of connections.

    bridge = Bridge(BridgeConfig(socket_path=...), service)
    asyncio.run(bridge.serve(on_ready=print))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, OverloadedError
from ..runtime import ModelSource
from ..serving import Service, store_resolver
from .commands import COMMANDS, looks_like_path
from .connection import Connection, Peer
from .paths import claim_socket
from .protocol import error_reply

__all__ = ["Bridge", "BridgeConfig", "BridgeState", "bridge_resolver"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_DRAIN_POLL_S = 0.05


@dataclass(frozen=True)
class BridgeConfig:
    """How the bridge listens and what it allows."""

    socket_path: Path
    tcp: tuple[str, int] | None = None  # host, port (0: any free port)
    token: str | None = None  # required as ``AUTH <token>`` on TCP
    max_connections: int = 64
    max_line_bytes: int = 1 << 20
    default_model: str | None = None  # the model of a new connection before any LOAD
    version: str = ""
    shutdown_timeout: float = 30.0  # seconds the commands running get to finish on SIGTERM or SHUTDOWN


@dataclass(eq=False)
class BridgeState:
    """What every connection of one bridge shares."""

    config: BridgeConfig
    service: Service
    connections: set[Connection] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # drain, then stop
    cut: asyncio.Event = field(default_factory=asyncio.Event)  # a second signal: stop draining now


def bridge_resolver(store: Any) -> Callable[[str], ModelSource]:
    """Names -> files: a stored model (with its Modelfile's load settings), or a GGUF path (only
    LOAD over the Unix socket names one)."""

    def resolve(name: str) -> ModelSource:
        if looks_like_path(name):
            path = Path(name).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(f"no GGUF file at {name}")
            return ModelSource(name=str(path), path=path)
        return stored(name)

    stored = store_resolver(store)
    return resolve


def _unix_peer(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    uid = None
    with contextlib.suppress(OSError, AttributeError):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
    return Peer(local=True, uid=uid)


class Bridge:
    """Serves the line protocol until SHUTDOWN, SIGTERM or SIGINT."""

    def __init__(self, config: BridgeConfig, service: Service) -> None:
        self.config = config
        self.service = service
        self.state: BridgeState | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, local: bool) -> None:
        state = self.state
        assert state is not None
        if len(state.connections) >= self.config.max_connections:
            with contextlib.suppress(Exception):
                writer.write(error_reply(OverloadedError(
                    f"too many connections ({self.config.max_connections}); retry later")))
                await asyncio.wait_for(writer.drain(), 1.0)
                writer.close()
            return
        if local:
            peer = _unix_peer(writer)
        else:
            peer = Peer(local=False, address=str(writer.get_extra_info("peername")))
        conn = Connection(state, reader, writer, peer, model=self.config.default_model,
                          authenticated=local or not self.config.token)
        state.connections.add(conn)
        try:
            await conn.run(COMMANDS)
        finally:
            state.connections.discard(conn)

    async def serve(self, *, on_ready: Callable[[str], None] = print) -> None:
        """Listen, answer, and on the way out close every connection and the servers."""
        self.state = BridgeState(self.config, self.service)
        limit = self.config.max_line_bytes + 1
        claimed = claim_socket(self.config.socket_path)
        servers: list[asyncio.base_events.Server] = []
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._signalled)
        try:
            if self.config.default_model:  # after the socket is ours: a taken one fails before any load
                (await self.service.acquire(self.config.default_model)).release()
            servers.append(await asyncio.start_unix_server(
                lambda r, w: self._handle(r, w, local=True), sock=claimed.sock, limit=limit))
            on_ready(f"listening on unix:{claimed.path}")
            if self.config.tcp is not None:
                host, port = self.config.tcp
                tcp = await asyncio.start_server(lambda r, w: self._handle(r, w, local=False), host, port,
                                                 limit=limit, reuse_address=True)
                servers.append(tcp)
                bound = tcp.sockets[0].getsockname()
                on_ready(f"listening on tcp:{bound[0]}:{bound[1]}")
            await self.state.stopping.wait()
        finally:
            try:
                await self._stop(servers)
            finally:
                for sig in _SIGNALS:
                    loop.remove_signal_handler(sig)
                claimed.release()

    def _signalled(self) -> None:
        """The first SIGTERM or SIGINT drains; the next one stops at once."""
        assert self.state is not None
        if self.state.stopping.is_set():
            self.state.cut.set()
        self.state.stopping.set()

    async def _drain(self) -> None:
        """Wait (up to ``shutdown_timeout``) until no connection is answering a command: a stream
        in flight gets to its last line."""
        state = self.state
        assert state is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        busy = [c for c in state.connections if c.busy]
        if busy:
            logger.info("draining: %d command(s) running, up to %.0f s", len(busy), self.config.shutdown_timeout)
        while any(c.busy for c in state.connections) and not state.cut.is_set():
            if loop.time() >= deadline:
                logger.warning("drain timeout: cancelling %d command(s)", sum(c.busy for c in state.connections))
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(state.cut.wait(), _DRAIN_POLL_S)

    async def _stop(self, servers: list[Any]) -> None:
        assert self.state is not None
        for server in servers:
            server.close()  # no new connection; those open finish what they run
        await self._drain()
        await asyncio.gather(*(c.close() for c in list(self.state.connections)), return_exceptions=True)
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        await self.service.blocking(self.service.manager.close, 0.0)
        self.service.close()
