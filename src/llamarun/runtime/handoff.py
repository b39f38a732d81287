"""Handing events from the engine thread to their consumers once per step, as the next decode starts.

Waking an asyncio loop takes a system call, which lets go of the GIL; the
loop's thread then takes it and keeps it while it formats and sends what it
was given, and the engine thread waits.  Woken after every sampled token, it
held up the engine thread in the middle of sampling, once per stream per
step.  Instead, events wait in flushers and are handed over in one wake-up
per step, after the next batch is planned, just before ``llama_decode``.
(The loop may still run before the decode starts rather than during it; on a
machine whose cores all compute, that costs the same either way: a helper
thread that woke the loop from inside the decode measured slower.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["Flusher", "Handoff"]


class Flusher(Protocol):
    """Events held for a consumer; :meth:`flush` (engine thread) hands them over.

    ``flush`` returns False once nobody can receive any more (it is then dropped).
    """

    def flush(self) -> bool: ...


F = TypeVar("F", bound=Flusher)


class Handoff:
    """The flushers of one runtime."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flushers: dict[object, Flusher] = {}
        self._list: tuple[tuple[object, Flusher], ...] = ()

    def flusher(self, key: object, factory: Callable[[], F]) -> F:
        """The flusher registered under ``key``, made by ``factory`` the first time (any thread)."""
        with self._lock:
            found = self._flushers.get(key)
            if found is None:
                found = self._flushers[key] = factory()
                self._list = tuple(self._flushers.items())
            return found  # type: ignore[return-value]

    def flush(self) -> None:
        """Engine thread: hand over everything pending."""
        for key, flusher in self._list:
            if not flusher.flush():
                with self._lock:
                    self._flushers.pop(key, None)
                    self._list = tuple(self._flushers.items())
