"""Ollama's embedding endpoints (``/api/embed``, legacy ``/api/embeddings``) and the shared embed loop."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from ..runtime import Lease
from .ollama_schemas import EmbeddingsRequest, EmbedRequest
from .ollama_stream import nanoseconds
from .params import ollama_load_options
from .service import Service
from .streaming import until_disconnect

__all__ = ["embed_router", "embed_texts"]


def embed_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["ollama"])

    @router.post("/api/embed")
    async def embed(body: EmbedRequest, request: Request) -> dict[str, Any]:
        started = time.monotonic()
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        with lease:
            vectors, n_tokens = await embed_texts(service, lease, request, texts, body.truncate, True,
                                                  body.dimensions)
        return {"model": body.model, "embeddings": [v.tolist() for v in vectors],
                "total_duration": nanoseconds(time.monotonic() - started),
                "load_duration": nanoseconds(lease.load_s), "prompt_eval_count": n_tokens}

    @router.post("/api/embeddings")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        with lease:
            if not body.prompt:
                return {"embedding": []}
            vectors, _ = await embed_texts(service, lease, request, [body.prompt], True, False, None)
        return {"embedding": vectors[0].tolist()}

    return router


async def embed_texts(service: Service, lease: Lease, request: Request, texts: Sequence[Any], truncate: bool,
                      normalize: bool, dimensions: int | None) -> tuple[list[np.ndarray], int]:
    """Embed each text on the model's engine thread; the client leaving stops the work."""
    embedder = lease.embedder()

    async def run() -> tuple[list[np.ndarray], int]:
        vectors, total = [], 0
        for text in texts:
            item = await service.blocking(embedder.embed, text, truncate=truncate, normalize=normalize)
            vector = item.vector
            if dimensions is not None and dimensions < vector.shape[0]:
                vector = vector[:dimensions]
                norm = float(np.linalg.norm(vector))
                if normalize and norm > 0:
                    vector = vector / norm
            vectors.append(vector)
            total += item.n_tokens
        return vectors, total

    return await until_disconnect(request.receive, run())
