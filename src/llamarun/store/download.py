"""Resumable blob downloads: ``partial/<key>.partial`` grows across attempts and processes.

A dropped connection resumes with ``Range`` (and ``If-Range`` when the server
gave a validator); a killed process resumes from the partial file it left
(re-hashing what is there); a server that ignores ``Range`` restarts the file
cleanly; the body is hashed as it streams, bounded by the expected size (or
the free disk space), and renamed into ``blobs/`` only when verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import DiskFullError, DownloadError
from .blobs import BlobInfo, commit_blob, ensure_free_space, iter_file, sync_file, write_chunk
from .layout import StoreLayout
from .netpolicy import host_is_internal
from .progress import ProgressFn, PullProgress
from .transfer import (
    CONTENT_RANGE,
    TransferPolicy,
    TransientError,
    open_client,
    raise_for_status,
    send_checked,
    with_retries,
)

__all__ = ["BlobRequest", "download_blob"]

logger = logging.getLogger(__name__)

_EMIT_EVERY = 0.1  # seconds between progress events while bytes flow


@dataclass(frozen=True)
class BlobRequest:
    """One blob to download: where from, what it must hash to, how big it must be."""

    url: str
    key: str  # partial/lock key: sha256-<hex> or url-<hex>
    sha256: str | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # progress status, e.g. "pulling 6a0746a1ec1a"


class _Partial:
    """The resumable partial file of one key, hashed as it grows."""

    def __init__(self, layout: StoreLayout, key: str) -> None:
        self.layout = layout
        self.path = layout.partial_path(key)
        self.meta_path = layout.partial_meta(key)
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.validator: str | None = None
        self.file: Any = None

    def open(self, url: str, *, verified: bool) -> None:
        """Open (or create) the partial; keep its bytes if they can be trusted for ``url``."""
        self.layout.ensure()
        meta = self._load_meta()
        same_source = meta.get("url") == url
        validator = meta.get("validator") if same_source and isinstance(meta.get("validator"), str) else None
        self.file = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - closed in close()
        if self.path.stat().st_size and (verified or validator):
            for chunk in iter_file(self.path):
                self.hasher.update(chunk)
                self.offset += len(chunk)
            self.validator = validator
            logger.info("resuming %s at byte %d", url, self.offset)
        else:
            self.reset()

    def _load_meta(self) -> dict[str, Any]:
        try:
            with open(self.meta_path, "rb") as f:
                meta = json.loads(f.read(1 << 16))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def remember(self, url: str, validator: str | None, total: int | None) -> None:
        self.validator = validator
        with open(self.meta_path, "w", encoding="utf-8") as f:
            json.dump({"url": url, "validator": validator, "total": total}, f)

    def reset(self) -> None:
        self.file.truncate(0)
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.validator = None

    def append(self, chunk: bytes, what: str) -> None:
        try:
            write_chunk(self.file, chunk, self.layout, what)
        except DiskFullError:
            self.reset()
            raise
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.offset == 0:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)


class _Download:
    def __init__(self, layout: StoreLayout, req: BlobRequest, policy: TransferPolicy, emit: ProgressFn) -> None:
        self.layout, self.req, self.policy, self.emit = layout, req, policy, emit
        self.part = _Partial(layout, req.key)
        self.origin_internal = host_is_internal(urlsplit(req.url).hostname or "")
        self.no_range = False
        self.high_water = 0  # most bytes ever held: only going past it counts as progress
        self.total: int | None = req.size
        self.last_emit = 0.0

    def what(self) -> str:
        return f"the download of {self.req.url}"

    def progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_emit >= _EMIT_EVERY:
            self.last_emit = now
            digest = f"sha256:{self.req.sha256}" if self.req.sha256 else ""
            self.emit(PullProgress(self.req.label or "pulling", digest, self.total or 0, self.part.offset))

    def attempt(self, client: Any) -> bool:
        """One GET; True when the file is complete, False to try again at once."""
        headers = {"Accept-Encoding": "identity", **self.req.headers}
        if self.part.offset and not self.no_range:
            headers["Range"] = f"bytes={self.part.offset}-"
            if self.part.validator:
                headers["If-Range"] = self.part.validator
        sent = send_checked(client, self.req.url, headers, self.policy, self.origin_internal)
        with contextlib.closing(sent) as response:
            if response.status_code == 416 and self.part.offset:
                if self.part.offset == self._range_total(response):
                    return True  # the partial already holds every byte; the digest check decides
                self.part.reset()
                return False
            raise_for_status(response, self.req.url)
            self._start_body(response)
            self._stream(response)
        if self.total is not None and self.part.offset < self.total:
            raise TransientError(f"the connection closed after {self.part.offset} of {self.total} bytes")
        return True

    def _range_total(self, response: Any) -> int | None:
        """The size a 416 answer states (``Content-Range: bytes */<size>``), else the expected one."""
        match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else self.req.size

    def _start_body(self, response: Any) -> None:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadError(f"{self.req.url} sent a {encoding}-encoded body although identity was asked for")
        total = self._span(response)
        if self.req.size is not None and total is not None and total != self.req.size:
            raise DownloadError(f"{self.req.url} has {total} bytes but {self.req.size} were expected; "
                                "the file on the server is not the one that was asked for")
        self.total = self.req.size if self.req.size is not None else total
        if self.total is not None:
            ensure_free_space(self.layout, self.total - self.part.offset, self.what(),
                              reserve=self.policy.reserve_bytes)
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        if validator and validator.startswith("W/"):
            validator = None
        self.part.remember(self.req.url, validator, self.total)
        self.progress(force=True)

    def _span(self, response: Any) -> int | None:
        """The file's total size from the headers; resets the partial when the server starts over."""
        if response.status_code == 206:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self.part.offset:
                self.no_range = True
                self.part.reset()
                raise TransientError(f"{self.req.url} answered an unusable Content-Range; restarting without Range")
            return None if match.group(3) == "*" else int(match.group(3))
        if self.part.offset:
            logger.info("%s ignored the Range request; restarting from the first byte", self.req.url)
            self.part.reset()
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None

    def _limit(self) -> tuple[int, bool]:
        """The most bytes the file may have, and whether that bound is the free disk space."""
        if self.total is not None:
            return self.total, False
        free = shutil.disk_usage(self.layout.root).free - self.policy.reserve_bytes
        disk_limit = self.part.offset + max(free, 0)
        if self.policy.max_bytes is not None and self.policy.max_bytes <= disk_limit:
            return self.policy.max_bytes, False
        return disk_limit, True

    def _too_large(self, limit: int, by_disk: bool) -> Exception:
        self.part.reset()
        if by_disk:
            return DiskFullError(f"{self.what()} does not fit in the free disk space of {self.layout.root} "
                                 f"({limit} bytes); the partial file was removed, existing models are intact")
        return DownloadError(f"{self.req.url} sent more than the {limit} bytes allowed; the partial file was "
                             "deleted and nothing was stored")

    def _stream(self, response: Any) -> None:
        import httpx

        limit, by_disk = self._limit()
        try:
            for chunk in response.iter_raw():
                if self.part.offset + len(chunk) > limit:
                    raise self._too_large(limit, by_disk)
                self.part.append(chunk, self.what())
                self.progress()
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} after {self.part.offset} bytes: {exc}") from None

    def progressed(self) -> bool:
        """Whether the last attempt got further than any before (re-fetching old bytes does not count)."""
        if self.part.offset > self.high_water:
            self.high_water = self.part.offset
            return True
        return False

    def on_retry(self, reason: str, delay: float) -> None:
        self.emit(PullProgress(f"retrying in {delay:.1f}s: {reason}"))

    def run(self) -> BlobInfo:
        self.part.open(self.req.url, verified=self.req.sha256 is not None)
        try:
            if self.req.size is not None:  # known up front: check before the first byte moves
                ensure_free_space(self.layout, self.req.size - self.part.offset, self.what(),
                                  reserve=self.policy.reserve_bytes)
            with open_client(self.policy) as client:
                while not with_retries(self.policy, self.what(), lambda: self.attempt(client),
                                        progressed=self.progressed,
                                        on_retry=self.on_retry):
                    pass
            self.progress(force=True)
            sync_file(self.part.file, self.layout, self.what())
            digest = self.part.hasher.hexdigest()
        finally:
            self.part.close()
        self.emit(PullProgress("verifying sha256 digest"))
        try:
            return commit_blob(self.layout, self.part.path, digest, self.req.sha256, what=self.what())
        finally:
            self.part.meta_path.unlink(missing_ok=True)


def download_blob(layout: StoreLayout, req: BlobRequest, policy: TransferPolicy, emit: ProgressFn) -> BlobInfo:
    """Download ``req`` into ``blobs/`` (resuming a partial file left by an earlier attempt).

    The caller holds the lock of ``req.key``.  Raises :class:`DownloadError`
    after the retries, :class:`DigestMismatchError` (partial deleted) when the
    bytes do not match, :class:`DiskFullError` (no retry) when they cannot fit,
    :class:`RedirectRefusedError` for a forbidden redirect.
    """
    return _Download(layout, req, policy, emit).run()
