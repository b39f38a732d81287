"""Ollama's embedding endpoints: ``/api/embed`` and the legacy ``/api/embeddings``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...serving import embed_texts, load_options
from ..context import ServiceDep
from ..ignored import IgnoredFieldsRoute
from ..streaming import disconnected
from .schemas import EmbeddingsRequest, EmbedRequest
from .stream import nanoseconds

__all__ = ["embed_router"]


def embed_router() -> APIRouter:
    router = APIRouter(tags=["ollama"], route_class=IgnoredFieldsRoute)
    router.add_api_route("/api/embed", embed, methods=["POST"])
    router.add_api_route("/api/embeddings", embeddings, methods=["POST"])
    return router


async def embed(body: EmbedRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    started = time.monotonic()
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    gone = disconnected(request.receive)
    lease = await service.acquire(body.model, load_options(body.options), body.keep_alive, gone=gone)
    with lease:
        out = await embed_texts(service, lease, texts, truncate=bool(body.truncate), normalize=True,
                                dimensions=body.dimensions, gone=gone)
    return {"model": body.model, "embeddings": [v.tolist() for v in out.vectors],
            "total_duration": nanoseconds(time.monotonic() - started),
            "load_duration": nanoseconds(lease.load_s), "prompt_eval_count": out.n_tokens}


async def embeddings(body: EmbeddingsRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    gone = disconnected(request.receive)
    lease = await service.acquire(body.model, load_options(body.options), body.keep_alive, gone=gone)
    with lease:
        if not body.prompt:
            return {"embedding": []}
        out = await embed_texts(service, lease, [body.prompt], truncate=True, normalize=False, gone=gone)
    return {"embedding": out.vectors[0].tolist()}
