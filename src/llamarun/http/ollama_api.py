"""Ollama's API: one router composed of the generation, embedding and model-management routers.

- :mod:`.ollama_generate`: ``/api/generate``, ``/api/chat`` (on :mod:`.ollama_turn`)
- :mod:`.ollama_embed`: ``/api/embed``, ``/api/embeddings``
- :mod:`.ollama_models`: ``/api/tags``, ``show``, ``ps``, ``copy``, ``delete``, ``pull``, ``create``, ``version``
- :mod:`.ollama_blobs`: ``HEAD``/``POST /api/blobs/{digest}`` (uploads for ``create``)
- :mod:`.ollama_stream`: NDJSON answers and timestamps
"""

from __future__ import annotations

from fastapi import APIRouter

from .ollama_blobs import blobs_router
from .ollama_embed import embed_router, embed_texts
from .ollama_generate import generation_router
from .ollama_models import models_router
from .ollama_stream import NDJSON, now_rfc3339, store_progress
from .service import Service

__all__ = ["NDJSON", "embed_texts", "now_rfc3339", "ollama_router", "store_progress"]


def ollama_router(service: Service) -> APIRouter:
    """Every Ollama endpoint, in the order they were always registered."""
    router = APIRouter()
    router.include_router(generation_router(service))
    router.include_router(embed_router(service))
    router.include_router(models_router(service))
    router.include_router(blobs_router(service))
    return router
