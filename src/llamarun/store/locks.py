"""File locks per store key: two pulls of one blob (threads or processes) do one transfer.

On POSIX a lock is ``flock`` on ``partial/<key>.lock``; after acquiring it the
holder checks that the path still names the file it locked, and locks again
if not.  That makes a lock file safe to delete while holding it, which is how
``gc`` removes stale lock files (:func:`remove_lock_file`): a pull that was
waiting on the deleted file notices and locks the new one, so two holders of
one key can never coexist.  Elsewhere ``filelock`` is used and lock files are
kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .layout import StoreLayout

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["key_lock", "remove_lock_file", "try_key_lock"]

logger = logging.getLogger(__name__)


def _flock(path: Path, *, blocking: bool) -> int | None:
    """An fd holding the lock of ``path`` (the file the path names now), or ``None`` if it is taken."""
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)  # gc removed the file while we waited for it: lock the one the path names now


@contextlib.contextmanager
def _filelock(path: Path, *, blocking: bool, on_wait: Callable[[], None] | None) -> Iterator[bool]:
    import filelock  # deferred

    lock = filelock.FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not blocking:
            yield False
            return
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def key_lock(layout: StoreLayout, key: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock of ``key``; calls ``on_wait`` once if someone else holds it first."""
    layout.ensure()
    path = layout.lock_path(key)
    if fcntl is None:
        with _filelock(path, blocking=True, on_wait=on_wait):
            yield
        return
    fd = _flock(path, blocking=False)
    if fd is None:
        logger.info("waiting for another process working on %s", key)
        if on_wait is not None:
            on_wait()
        fd = _flock(path, blocking=True)
    try:
        yield
    finally:
        os.close(fd)  # type: ignore[arg-type]


@contextlib.contextmanager
def try_key_lock(layout: StoreLayout, key: str) -> Iterator[bool]:
    """Hold the lock of ``key`` if it is free right now; yields whether it was acquired."""
    layout.ensure()
    path = layout.lock_path(key)
    if fcntl is None:
        with _filelock(path, blocking=False, on_wait=None) as held:
            yield held
        return
    fd = _flock(path, blocking=False)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def remove_lock_file(path: Path) -> bool:
    """Delete the lock file ``path`` if no one holds it (POSIX only); ``True`` when it was deleted."""
    if fcntl is None or not path.is_file():
        return False
    fd = _flock(path, blocking=False)
    if fd is None:
        return False
    try:
        path.unlink(missing_ok=True)  # while holding it: waiters re-check the path and lock a new file
    finally:
        os.close(fd)
    return True
