"""Writing blobs: hash while writing a partial file, check it, rename it into ``blobs/`` only when verified."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatchError, DiskFullError, DownloadError, GGUFFormatError
from ..gguf import GGUFInfo, check_gguf
from ..units import format_bytes
from .layout import StoreLayout

__all__ = [
    "BlobInfo",
    "commit_blob",
    "ensure_free_space",
    "hash_file",
    "human_bytes",
    "ingest_stream",
    "iter_file",
    "sync_file",
    "write_chunk",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# a full file system, a full quota, or a file bigger than the file system or the process's
# file-size limit (``ulimit -f``, RLIMIT_FSIZE) takes: each means the model does not fit here
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


@dataclass(frozen=True)
class BlobInfo:
    """A verified GGUF blob in the store."""

    digest: str  # hex
    size: int
    path: Path
    gguf: GGUFInfo


human_bytes = format_bytes  # one size convention for users: binary units (llamarun.units)


def ensure_free_space(layout: StoreLayout, needed: int, what: str, *, reserve: int = 0) -> None:
    """Raise :class:`DiskFullError` (no retry) unless ``needed`` bytes fit in the store's file system."""
    if needed <= 0:
        return
    layout.ensure()
    free = shutil.disk_usage(layout.root).free
    if needed + reserve > free:
        raise DiskFullError(
            f"not enough free disk space for {what}: it needs {human_bytes(needed)} but only "
            f"{human_bytes(free)} is free in {layout.root}; free some space (llamarun rm, llamarun gc) "
            "and try again"
        )


def disk_full(exc: OSError, layout: StoreLayout, what: str) -> DiskFullError:
    if exc.errno == errno.EFBIG:
        return DiskFullError(f"{what} is larger than the file system holding {layout.root} or this process's "
                             f"file-size limit (ulimit -f) allows ({exc.strerror}); the partial file was removed, "
                             "existing models are intact")
    return DiskFullError(f"the disk holding {layout.root} filled up while writing {what} ({exc.strerror}); "
                         "the partial file was removed, existing models are intact")


def write_chunk(out: BinaryIO, chunk: bytes, layout: StoreLayout, what: str) -> None:
    """Write all of ``chunk`` to ``out``, a full disk turned into :class:`DiskFullError`.

    An unbuffered file may take only part of a chunk (the disk or the file-size limit was reached
    mid-chunk) and say so only by the count it returns: the rest is written again, so the error
    comes from the next write instead of a file silently shorter than the bytes hashed.
    """
    view = memoryview(chunk)
    try:
        while view:
            written = out.write(view)
            if not written:  # a regular file that takes nothing raises; a zero count is no progress
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise disk_full(exc, layout, what) from None
        raise


def sync_file(out: BinaryIO, layout: StoreLayout, what: str) -> None:
    """Flush and fsync ``out``, a full disk turned into :class:`DiskFullError`."""
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise disk_full(exc, layout, what) from None
        raise


def iter_file(path: Path, *, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


def hash_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in bounded chunks."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in iter_file(path):
        hasher.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(size)
    return hasher.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_blob(layout: StoreLayout, partial: Path, digest: str, expected: str | None, *, what: str) -> BlobInfo:
    """Move a fully written ``partial`` into ``blobs/`` once its digest and GGUF structure check out.

    On any failure the partial is deleted and the error says so.
    """
    try:
        if expected is not None and digest != expected:
            raise DigestMismatchError(
                f"{what}: the bytes have sha256 {digest}, expected {expected}; the partial file was "
                "deleted and nothing was stored"
            )
        try:
            info = check_gguf(partial)
        except GGUFFormatError as exc:
            raise GGUFFormatError(f"{what} is not a usable GGUF file ({exc}); nothing was stored",
                                  path=exc.path) from None
        target = layout.blob_path(f"sha256:{digest}")
        os.chmod(partial, 0o644)  # temp files start private; blobs are readable like any model file
        os.replace(partial, target)
        _fsync_dir(layout.blobs)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("stored blob sha256:%s (%d bytes) from %s", digest, info.file_size, what)
    return BlobInfo(digest, info.file_size, target, dataclasses.replace(info, path=str(target)))


def ingest_stream(
    layout: StoreLayout,
    chunks: Iterable[bytes],
    *,
    expected_sha256: str | None,
    expected_size: int | None = None,
    key: str | None = None,
    what: str = "the model file",
    progress: Callable[[int], None] | None = None,
) -> BlobInfo:
    """Store ``chunks`` as a blob, hashing while writing a unique temporary file.

    The file is renamed into ``blobs/`` only when its SHA-256 equals
    ``expected_sha256`` (when given) and it is a well-formed GGUF file;
    otherwise it is deleted and :class:`DigestMismatchError` (or
    :class:`GGUFFormatError`) is raised.  More bytes than ``expected_size``
    is a :class:`DownloadError`.
    """
    if key is None:
        key = f"sha256-{expected_sha256}" if expected_sha256 else "url-" + "0" * 16
    if expected_size is not None:
        ensure_free_space(layout, expected_size, what)
    partial = layout.temp_file(key)
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb", buffering=0) as out:
            for chunk in chunks:
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise DownloadError(f"{what} is larger than the expected {expected_size} bytes; nothing was stored")
                write_chunk(out, chunk, layout, what)
                hasher.update(chunk)
                if progress is not None:
                    progress(size)
            sync_file(out, layout, what)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if expected_size is not None and size != expected_size:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{what} has {size} bytes, expected {expected_size}; nothing was stored")
    return commit_blob(layout, partial, hasher.hexdigest(), expected_sha256, what=what)
