"""Where the bridge's socket lives and how it is claimed: a private directory, a 0600 socket, a
stale socket replaced, a live one never stolen.

The default directory is ``$XDG_RUNTIME_DIR/llamarun`` (a per-user tmpfs on
systemd machines), else ``<store home>/run``; it is made 0700 and must belong to
the bridge's user. A lock file beside the socket (``bridge.sock.lock``, held
with ``flock`` while the bridge runs) tells a second bridge that the socket is
taken; a socket file nobody listens on (connect is refused) is left from a
crashed bridge and is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import AccessDeniedError, InvalidParameterError

__all__ = ["ClaimedSocket", "claim_socket", "default_socket_path", "private_dir"]

SOCKET_NAME = "bridge.sock"
_MAX_PATH = 107  # sockaddr_un.sun_path holds 108 bytes with its NUL


def default_socket_path(home: Path, env: Mapping[str, str] | None = None) -> Path:
    runtime = (os.environ if env is None else env).get("XDG_RUNTIME_DIR", "")
    base = Path(runtime) / "llamarun" if runtime and Path(runtime).is_dir() else home / "run"
    return base / SOCKET_NAME


def private_dir(path: Path) -> None:
    """Make ``path`` (a directory only this user may enter: 0700), or check and tighten it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidParameterError(f"{path} is not a directory (a symbolic link?); remove it or choose another "
                                    "socket path", field="socket")
    if info.st_uid != os.getuid():
        raise AccessDeniedError(f"{path} belongs to another user; choose a socket path in a directory of yours")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


@dataclass
class ClaimedSocket:
    """A listening Unix socket the bridge owns, with the lock that says so."""

    path: Path
    sock: socket.socket
    lock: IO[str]
    inode: int

    def release(self) -> None:
        """Close the socket; remove its file if it is still this one; drop the lock."""
        self.sock.close()
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self.inode:
                self.path.unlink()
        self.lock.close()


def _take_lock(path: Path) -> IO[str]:
    lock = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the bridge's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise InvalidParameterError(f"another bridge is running on {path}; stop it (SHUTDOWN) or choose another "
                                    "socket path", field="socket") from None
    return lock


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a crashed bridge; refuse a live one or anything else."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise InvalidParameterError(f"{path} exists and is not a socket; remove it or choose another socket path",
                                    field="socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise InvalidParameterError(f"a bridge is already listening on {path}; stop it (SHUTDOWN) or choose another "
                                "socket path", field="socket")


def claim_socket(path: Path, *, backlog: int = 512) -> ClaimedSocket:
    """Listen on ``path`` (mode 0600), replacing a stale socket, never a live one."""
    if len(os.fsencode(path)) > _MAX_PATH:
        raise InvalidParameterError(f"socket path too long ({len(os.fsencode(path))} bytes, at most {_MAX_PATH}): "
                                    f"{path}", field="socket")
    lock = _take_lock(path)
    try:
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is never reachable by others, not even for an instant
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(backlog)
        return ClaimedSocket(path, sock, lock, path.lstat().st_ino)
    except BaseException:
        lock.close()
        raise
