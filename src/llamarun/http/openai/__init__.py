"""OpenAI's API: chat completions, completions, embeddings and models.

- :mod:`.chat`: ``/v1/chat/completions``; :mod:`.completions`: ``/v1/completions`` (both on
  :mod:`.answer`, the skeleton they share)
- :mod:`.resources`: ``/v1/embeddings``, ``/v1/models``
- :mod:`.fields`: request fields -> the serving layer's requests; :mod:`.schemas`: request bodies
"""

from __future__ import annotations

from fastapi import APIRouter

from .chat import chat_completions
from .completions import completions
from .resources import embeddings, model, models

__all__ = ["openai_router"]


def openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    router.add_api_route("/completions", completions, methods=["POST"])
    router.add_api_route("/embeddings", embeddings, methods=["POST"])
    router.add_api_route("/models", models, methods=["GET"])
    router.add_api_route("/models/{model:path}", model, methods=["GET"])
    return router
