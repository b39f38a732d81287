"""Ollama's API: one router composed of the generation, embedding and model-management routers.

- :mod:`.generate`: ``/api/generate``, ``/api/chat`` (answered by :mod:`.turn`)
- :mod:`.embed`: ``/api/embed``, ``/api/embeddings``
- :mod:`.models`: ``/api/tags``, ``show``, ``ps``, ``copy``, ``delete``, ``pull``, ``create``, ``version``
- :mod:`.blobs`: ``HEAD``/``POST /api/blobs/{digest}`` (uploads for ``create``)
- :mod:`.stream`: NDJSON answers and timestamps
- :mod:`.schemas`: the request bodies
"""

from __future__ import annotations

from fastapi import APIRouter

from .blobs import blobs_router
from .embed import embed_router
from .generate import generation_router
from .models import models_router

__all__ = ["ollama_router"]


def ollama_router() -> APIRouter:
    """Every Ollama endpoint, in the order they were always registered."""
    router = APIRouter()
    router.include_router(generation_router())
    router.include_router(embed_router())
    router.include_router(models_router())
    router.include_router(blobs_router())
    return router
