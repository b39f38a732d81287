"""A wake-up file descriptor that the engine thread sets without letting go of the GIL.

The engine thread hands events to an asyncio loop just before ``llama_decode``
(see :mod:`llamarun.runtime.handoff`).  Every way Python has to write to a
file descriptor (``os.write``, ``socket.send``, ``call_soon_threadsafe``)
lets go of the GIL around the system call, and the woken loop thread takes it
in that moment: the engine thread then waits, doing nothing, until the loop has
formatted and sent everything (0.3 ms per step at one stream, 0.8 ms at
eight).  Written through a ``ctypes.PyDLL`` function (:func:`llamarun.engine.eventfd_setter`), which keeps the GIL, the
loop wakes but can only run once the decode has let go of the GIL, and its
work overlaps the decode instead of delaying it.

Linux only (``eventfd``); elsewhere :func:`wakeup_fd` returns None and callers
use ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import os

from ..engine import eventfd_setter

__all__ = ["WakeupFd", "wakeup_fd"]


class WakeupFd:
    """A non-blocking eventfd: :meth:`set` from any thread (GIL kept), :meth:`clear` from the reader."""

    def __init__(self) -> None:
        self._set = eventfd_setter()  # PyDLL: the call keeps the GIL
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def set(self) -> None:
        """Make the descriptor readable (a few microseconds; never blocks)."""
        self._set(self.fd)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def wakeup_fd() -> WakeupFd | None:
    """A new :class:`WakeupFd`, or None where the system has no eventfd."""
    if not hasattr(os, "eventfd"):
        return None
    try:
        return WakeupFd()
    except (OSError, AttributeError, TypeError):  # no libc to load, or eventfd refused
        return None
