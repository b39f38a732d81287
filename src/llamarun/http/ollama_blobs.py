"""Ollama's blob upload (``HEAD``/``POST /api/blobs/{digest}``), what ``ollama create`` and the
``ollama`` client's ``create_blob`` send before ``/api/create`` with ``files``.

The body streams into a temporary file of the store while it is hashed; it becomes a blob only
if its SHA-256 is the digest in the path and it is a well-formed GGUF file (the store keeps
models, nothing else).  Anything else is deleted and answered with 400; nothing is written
outside the store, and the disk's free space is checked against ``Content-Length`` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import DigestMismatchError, InvalidParameterError
from ..store.blobs import ingest_stream
from ..store.names import normalize_digest
from .service import Service

__all__ = ["blobs_router"]


def blobs_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["ollama"])

    @router.head("/api/blobs/{digest}")
    async def has_blob(digest: str) -> Response:
        path = service.store.layout.blob_path(digest)  # InvalidNameError (400) for a malformed digest
        return Response(status_code=200 if path.is_file() else 404)

    @router.post("/api/blobs/{digest}", status_code=201)
    async def upload_blob(digest: str, request: Request) -> Response:
        expected = normalize_digest(digest)
        layout = service.store.layout
        if layout.blob_path(digest).is_file():
            return Response(status_code=200)  # already stored: the body need not be read
        length = request.headers.get("content-length")
        chunks = _pull(request.stream(), asyncio.get_running_loop())
        try:
            await service.blocking(ingest_stream, layout, chunks, expected_sha256=expected,
                                   expected_size=int(length) if length and length.isdigit() else None,
                                   what=f"the uploaded blob {digest}")
        except DigestMismatchError as exc:  # the client's bytes, not a server's: a bad request
            raise InvalidParameterError(str(exc), field="digest") from None
        return Response(status_code=201)

    return router


def _pull(stream: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """The request body as a blocking iterator, for the store's writer on a worker thread."""
    while True:
        try:
            chunk = asyncio.run_coroutine_threadsafe(stream.__anext__(), loop).result()
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk
