"""``POST /v1/embeddings`` and ``GET /v1/models``."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Request

from ...errors import InvalidParameterError
from ...serving import embed_texts
from ..context import ServiceDep
from ..streaming import disconnected
from .schemas import EmbeddingRequest

__all__ = ["embeddings", "model", "models"]


async def embeddings(body: EmbeddingRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    raw = body.input
    if isinstance(raw, str):
        texts: list[Any] = [raw]
    elif raw and isinstance(raw[0], int):
        texts = [raw]
    else:
        texts = list(raw)
    if any(isinstance(t, str) and not t for t in texts):
        raise InvalidParameterError("input must not contain empty strings", field="input")
    gone = disconnected(request.receive)
    lease = await service.acquire(body.model, gone=gone)
    with lease:
        out = await embed_texts(service, lease, texts, truncate=True, normalize=True, dimensions=body.dimensions,
                                gone=gone)
    data = []
    for index, vector in enumerate(out.vectors):
        if body.encoding_format == "base64":
            value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {"object": "list", "data": data, "model": body.model,
            "usage": {"prompt_tokens": out.n_tokens, "total_tokens": out.n_tokens}}


async def models(service: ServiceDep) -> dict[str, Any]:
    stored = await service.blocking(service.store.list)
    return {"object": "list", "data": [_model(m) for m in stored]}


async def model(model: str, service: ServiceDep) -> dict[str, Any]:
    stored = await service.blocking(service.store.get, model)
    return _model(stored)


def _model(stored: Any) -> dict[str, Any]:
    created = stored.modified or stored.added
    return {"id": stored.name, "object": "model", "created": int(created.timestamp()) if created else 0,
            "owned_by": "llamarun"}
