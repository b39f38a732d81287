"""Ollama's blob upload (``HEAD``/``POST /api/blobs/{digest}``), what ``ollama create`` and the
``ollama`` client's ``create_blob`` send before ``/api/create`` with ``files``.

The body streams into a temporary file of the store while it is hashed; it becomes a blob only
if its SHA-256 is the digest in the path and it is a well-formed GGUF file (the store keeps
models, nothing else).  Anything else is deleted and answered with 400; nothing is written
outside the store, and the disk's free space is checked against ``Content-Length`` first.
The body is read on the event loop, each chunk written on the worker pool: a client that
stalls mid-upload holds a connection, never a worker thread.  The blob's store lock is held
throughout, so a pull of the same blob waits and ``llamarun gc`` leaves the partial file alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from ...errors import DigestMismatchError, InvalidParameterError
from ...serving import CallerGone, Service
from ...store.blobs import commit_blob, ensure_free_space, sync_file, write_chunk
from ...store.layout import StoreLayout
from ...store.locks import try_key_lock
from ...store.names import normalize_digest
from ..context import ServiceDep

__all__ = ["blobs_router"]

_LOCK_POLL_S = 0.25  # how often an upload retries the lock a pull or upload of the same blob holds


def blobs_router() -> APIRouter:
    router = APIRouter(tags=["ollama"])
    router.add_api_route("/api/blobs/{digest}", has_blob, methods=["HEAD"])
    router.add_api_route("/api/blobs/{digest}", upload_blob, methods=["POST"], status_code=201)
    return router


async def has_blob(digest: str, service: ServiceDep) -> Response:
    path = service.store.layout.blob_path(digest)  # InvalidNameError (400) for a malformed digest
    return Response(status_code=200 if path.is_file() else 404)


async def upload_blob(digest: str, request: Request, service: ServiceDep) -> Response:
    layout = service.store.layout
    expected = normalize_digest(digest)
    length = request.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    try:
        async with _blob_lock(layout, expected):  # a pull or upload of the same blob finishes first
            if layout.blob_path(digest).is_file():
                return Response(status_code=200)  # already stored: the body need not be read
            if size is not None:
                ensure_free_space(layout, size, f"the uploaded blob {digest}")
            await _receive(service, layout, request.stream(), expected, size)
    except ClientDisconnect:
        raise CallerGone() from None
    return Response(status_code=201)


@contextlib.asynccontextmanager
async def _blob_lock(layout: StoreLayout, expected: str) -> AsyncIterator[None]:
    """The store's lock of the blob, waited for without holding a thread (it is tried, not blocked on)."""
    while True:
        held = try_key_lock(layout, f"sha256-{expected}")
        if held.__enter__():
            break
        held.__exit__(None, None, None)
        await asyncio.sleep(_LOCK_POLL_S)
    try:
        yield
    finally:
        held.__exit__(None, None, None)


async def _receive(service: Service, layout: StoreLayout, body: AsyncIterator[bytes], expected: str,
                   size: int | None) -> None:
    what = f"the uploaded blob sha256:{expected}"
    partial = layout.temp_file(f"sha256-{expected}")
    hasher, seen = hashlib.sha256(), 0
    try:
        out: BinaryIO = await service.blocking(open, partial, "wb", buffering=0)
        try:
            async for chunk in body:
                seen += len(chunk)
                if size is not None and seen > size:
                    raise InvalidParameterError(f"the body is longer than its Content-Length of {size} bytes")
                hasher.update(chunk)
                await service.blocking(write_chunk, out, chunk, layout, what)
            await service.blocking(sync_file, out, layout, what)
        finally:
            await service.blocking(out.close)
        if size is not None and seen != size:
            raise InvalidParameterError(f"the body has {seen} bytes but its Content-Length says {size}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        await service.blocking(commit_blob, layout, partial, hasher.hexdigest(), expected, what=what)
    except DigestMismatchError as exc:  # the client's bytes, not a server's: a bad request
        raise InvalidParameterError(str(exc), field="digest") from None
