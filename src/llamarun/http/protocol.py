"""Slow and greedy clients, below ASGI: header and body read timeouts, connections per address.

uvicorn's h11 protocol times out only an idle keep-alive connection: a client that
never finishes its headers, sends one header line every few seconds, or sends less
body than its ``Content-Length`` holds its connection (and whatever the handler holds,
such as a blob's store lock) for as long as it likes.  :func:`guarded_protocol` makes
a subclass of uvicorn's ``H11Protocol`` for one server that

- closes a connection whose request line and headers are not complete within
  ``header_timeout`` seconds of its first byte (or of the connection, for a client
  that sends nothing), answering 408 when part of a request came;
- closes a connection that sends no body bytes for ``body_timeout`` seconds while the
  server is reading its body (the handler sees a disconnect, so an upload stops and
  releases its lock); time the server itself does not read (flow control) is not counted;
- answers 503 and closes a connection beyond ``max_connections_per_client`` open
  connections from one client address (0: no bound).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionLimits", "GuardedH11Protocol", "guarded_protocol"]


@dataclass
class ConnectionLimits:
    """The limits of one server and the open connections per client address it counts."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections_per_client: int = 256
    open_by_address: Counter[str] = field(default_factory=Counter)

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and not counted) when it is one too many."""
        bound = self.max_connections_per_client
        if bound > 0 and self.open_by_address[address] >= bound:
            return False
        self.open_by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open_by_address[address] -= 1
        if self.open_by_address[address] <= 0:
            del self.open_by_address[address]


def _raw_response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the header and body timeouts and the per-address bound of ``limits``
    (a subclass per server sets it: :func:`guarded_protocol`)."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits
        self._address: str | None = None  # set once counted in limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._partial_request = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unknown"
        if not self._limits.admit(address):
            bound = self._limits.max_connections_per_client
            self.transport.write(_raw_response(
                503, "Service Unavailable",
                f"too many open connections from {address} (the limit is {bound}); close some and retry",
                "retry-after: 1\r\n"))
            self.transport.close()
            return
        self._address = address
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._address is not None:
            self._limits.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track_state(bool(data))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._track_state(False)

    # -- timers -------------------------------------------------------------

    def _track_state(self, got_data: bool) -> None:
        """Arm or cancel the timers for the state h11 is in after what was read."""
        if self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # between requests or inside the headers of one
            self._cancel_body_timer()
            if got_data:
                self._partial_request = True
                if self._header_timer is None:
                    self._arm_header_timer()
        elif state is h11.SEND_BODY:
            self._cancel_header_timer()
            self._partial_request = False
            self._arm_body_timer()  # restarted by every chunk: an idle timeout
        else:
            self._partial_request = False
            self._cancel_timers()

    def _arm_header_timer(self) -> None:
        if self._limits.header_timeout > 0:
            self._header_timer = self.loop.call_later(self._limits.header_timeout, self._header_timed_out)

    def _arm_body_timer(self) -> None:
        self._cancel_body_timer()
        if self._limits.body_timeout > 0:
            self._body_timer = self.loop.call_later(self._limits.body_timeout, self._body_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._partial_request:
            self.logger.info("closing a connection whose headers did not arrive in %.0f s",
                             self._limits.header_timeout)
            self.transport.write(_raw_response(
                408, "Request Timeout",
                f"the request headers did not arrive within {self._limits.header_timeout:g} s"))
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        waiting = self.cycle is not None and self.cycle.waiting_for_100_continue
        if self.flow.read_paused or waiting:  # the server is not reading: the client is not the slow one
            self._arm_body_timer()
            return
        self.logger.info("closing a connection that sent no body bytes for %.0f s", self._limits.body_timeout)
        self.transport.close()  # the handler's receive() reports a disconnect


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) enforcing ``limits``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
