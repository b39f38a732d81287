"""One client connection: read a line, answer it, read the next; one line read ahead at most.

Reading one line at a time and waiting for each reply to be written (``drain``)
is the backpressure: a client that pipelines thousands of commands without
reading the replies stops being read once its socket buffers are full, and the
bridge holds at most one line of it beyond the one it is answering. While a
command runs, the next line is read ahead: ``CANCEL`` there cancels the running
generation, or the one the command is about to start (a CANCEL sent right behind
a STREAM often comes before its request is submitted); the end of the input does
not (a client may half-close and still read its answers), but a client that has
gone (its socket hung up, or a reply cannot be written) has its request
cancelled and its lease returned. Once the bridge is stopping, the command
running finishes (``busy`` says one runs) and any later one but QUIT is refused
as overloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AccessDeniedError, InvalidParameterError, LlamarunError, OverloadedError
from ..runtime import Lease
from ..serving import Turn
from .protocol import Command, error_reply, parse_command
from .settings import ConnectionSettings

if TYPE_CHECKING:
    from .server import BridgeState

__all__ = ["Connection", "Handler"]

logger = logging.getLogger(__name__)

Handler = Callable[["Connection", str], Awaitable[bool]]
"""A command: answers on the connection; False closes it."""

_HANGUP_POLL_S = 0.2
_LINGER_S = 5.0


class LineTooLongError(InvalidParameterError):
    """A line longer than the bridge's limit (the connection is closed after the reply)."""


@dataclass
class Peer:
    """Who is on the other end: a local process (with its uid) or a TCP address."""

    local: bool
    uid: int | None = None
    address: str = ""


@dataclass(eq=False)
class Connection:
    """The state of one client: its settings, its model lease, the command running."""

    bridge: BridgeState
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: Peer
    settings: ConnectionSettings = field(default_factory=ConnectionSettings.empty)
    model: str | None = None
    lease: Lease | None = None
    authenticated: bool = True
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    turn: Turn | None = None  # the generation running (CANCEL and a hang-up cancel it)
    cancelled: bool = False  # the read-ahead CANCEL ended the running generation
    busy: bool = False  # a command is being answered (the bridge's drain waits for it)
    _cancel_early: bool = False  # CANCEL came before the running command's generation started
    _next: asyncio.Future[bytes | None] | None = None
    _watcher: asyncio.Task[None] | None = None

    # -- writing -------------------------------------------------------------------

    async def send(self, line: bytes) -> None:
        """Write one reply line and wait until the client takes it (a gone client raises)."""
        if self.closed.is_set() and self.writer.is_closing():
            raise ConnectionResetError("the client has gone")
        self.writer.write(line)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.mark_gone()
            raise

    def mark_gone(self) -> None:
        """The client has gone: cancel its running generation (its slot frees at the next step)."""
        self.closed.set()
        if self.turn is not None:
            for request in self.turn.requests:
                request.cancel()

    async def gone(self) -> None:
        """Returns once the client has gone (the serving layer's :data:`~llamarun.serving.Gone`)."""
        await self.closed.wait()

    # -- reading -------------------------------------------------------------------

    async def _read_line(self) -> bytes | None:
        try:
            return (await self.reader.readuntil(b"\n"))[:-1]
        except asyncio.IncompleteReadError as exc:
            self._input_ended()
            return exc.partial or None  # a last line without its newline is still a command
        except asyncio.LimitOverrunError:
            raise LineTooLongError(f"line longer than {self.bridge.config.max_line_bytes} bytes; the connection "
                                   "is closed (send long prompts in several turns, or raise --max-line-bytes)",
                                   field="line") from None
        except (ConnectionError, OSError):
            self.mark_gone()
            return None

    def _input_ended(self) -> None:
        """The client sent its last byte: gone if its socket hung up, else watch for that."""
        if self._hung_up():
            self.mark_gone()
        elif self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_hangup())

    def _hung_up(self) -> bool:
        sock = self.writer.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return True
        if sock.family != socket.AF_UNIX:
            return False  # TCP: a hang-up shows when a reply cannot be written
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return any(mask & (select.POLLHUP | select.POLLERR) for _, mask in poller.poll(0))

    async def _watch_hangup(self) -> None:
        while not self.closed.is_set():
            if self._hung_up():
                self.mark_gone()
                return
            await asyncio.sleep(_HANGUP_POLL_S)

    def read_ahead(self) -> None:
        """Start reading the next line (once): CANCEL and a hang-up are seen while a command runs."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._read_line())
            self._next.add_done_callback(self._line_arrived)

    def _line_arrived(self, future: asyncio.Future[bytes | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        line = future.result()
        if line is None or line.strip().upper() != b"CANCEL":
            return
        if self.turn is not None:
            self.cancelled = True
            for request in self.turn.requests:
                request.cancel()
        elif self.busy:
            self._cancel_early = True  # the command's generation, if it starts one, is cancelled then

    async def _take_line(self) -> bytes | None:
        self.read_ahead()
        assert self._next is not None
        try:
            return await self._next
        finally:
            self._next = None

    # -- the loop ------------------------------------------------------------------

    async def run(self, handlers: dict[str, Handler]) -> None:
        """Answer commands until QUIT, the end of the input, an overlong line or a gone client."""
        try:
            while await self._one(handlers):
                pass
        except (ConnectionError, OSError):
            logger.debug("client went away")
        finally:
            await self.close()

    async def _one(self, handlers: dict[str, Handler]) -> bool:
        try:
            line = await self._take_line()
        except LineTooLongError as exc:
            await self.send(error_reply(exc))
            await self._linger()
            return False
        if line is None:
            return False
        try:
            command = parse_command(line)
            if command is None:
                return True
            if self.bridge.stopping.is_set() and command.name != "QUIT":
                raise OverloadedError("the bridge is shutting down: the commands running finish, no new one "
                                      "starts; retry once it is back", retry_after=5.0)
            self.busy = True
            try:
                return await self._dispatch(command, handlers)
            finally:
                self.busy = self._cancel_early = False
        except LlamarunError as exc:  # (some are OSErrors too: still the command's failure)
            await self.send(error_reply(exc))
        except (ConnectionError, OSError):
            raise  # the client has gone
        except Exception as exc:
            logger.exception("command failed")
            await self.send(error_reply(exc))
        return True

    async def _dispatch(self, command: Command, handlers: dict[str, Handler]) -> bool:
        if not self.authenticated and command.name != "AUTH":
            await self.send(error_reply(AccessDeniedError("the first line on this port must be AUTH <token>; "
                                                          "the connection is closed")))
            return False
        handler = handlers.get(command.name)
        if handler is None:
            raise InvalidParameterError(f"unknown command {command.name[:40]!r}: send HELP for the list",
                                        field="command")
        self.read_ahead()
        return await handler(self, command.argument)

    async def _linger(self) -> None:
        """Half-close, then discard what the client still sends (for up to a few seconds), so that
        the error line reaches it: closing with unread input would reset the connection."""
        with contextlib.suppress(Exception):
            self.writer.write_eof()

            async def discard() -> None:
                while await self.reader.read(1 << 16):
                    pass

            await asyncio.wait_for(discard(), _LINGER_S)

    async def close(self) -> None:
        """Cancel what runs, return the lease, close the socket (safe to call more than once)."""
        self.closed.set()
        for task in (self._next, self._watcher):
            if task is not None:
                task.cancel()
        if self.turn is not None:
            self.turn.close()
        self.release()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def watch(self, turn: Turn | None) -> None:
        """Mark ``turn`` as this connection's running generation (None: it ended)."""
        self.turn = turn
        if turn is not None:
            self.cancelled = False
        if turn is not None and self.closed.is_set():
            turn.close()
        elif turn is not None and self._cancel_early:  # CANCEL sent right behind the command
            self._cancel_early, self.cancelled = False, True
            for request in turn.requests:
                request.cancel()

    def describe(self) -> dict[str, Any]:
        return {"local": self.peer.local, "model": self.model}
