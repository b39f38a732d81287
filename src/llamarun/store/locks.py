"""File locks per store key: two pulls of one blob (threads or processes) do one transfer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from .layout import StoreLayout

__all__ = ["key_lock", "try_key_lock"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def key_lock(layout: StoreLayout, key: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock of ``key``; calls ``on_wait`` once if someone else holds it first."""
    import filelock  # deferred

    layout.ensure()
    lock = filelock.FileLock(layout.lock_path(key), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("waiting for another process working on %s", key)
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def try_key_lock(layout: StoreLayout, key: str) -> Iterator[bool]:
    """Hold the lock of ``key`` if it is free right now; yields whether it was acquired."""
    import filelock

    lock = filelock.FileLock(layout.lock_path(key), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
