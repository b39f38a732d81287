"""OpenAI's API: chat completions, completions, responses, embeddings and models.

- :mod:`.chat`: ``/v1/chat/completions``; :mod:`.completions`: ``/v1/completions`` (both on
  :mod:`.answer`, the skeleton they share)
- :mod:`.responses`: ``/v1/responses`` (the Responses API: :mod:`.responses_input`,
  :mod:`.responses_output`, :mod:`.responses_stream`, :mod:`.responses_store`, :mod:`.responses_schemas`)
- :mod:`.resources`: ``/v1/embeddings``, ``/v1/models``
- :mod:`.fields`: request fields -> the serving layer's requests; :mod:`.schemas`: request bodies
"""

from __future__ import annotations

from fastapi import APIRouter

from ..ignored import IgnoredFieldsRoute
from .chat import chat_completions
from .completions import completions
from .resources import embeddings, model, models
from .responses import cancel_response, create_response, delete_response, get_response

__all__ = ["openai_router"]


def openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"], route_class=IgnoredFieldsRoute)
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    router.add_api_route("/completions", completions, methods=["POST"])
    router.add_api_route("/responses", create_response, methods=["POST"])
    router.add_api_route("/responses/{response_id}", get_response, methods=["GET"])
    router.add_api_route("/responses/{response_id}", delete_response, methods=["DELETE"])
    router.add_api_route("/responses/{response_id}/cancel", cancel_response, methods=["POST"])
    router.add_api_route("/embeddings", embeddings, methods=["POST"])
    router.add_api_route("/models", models, methods=["GET"])
    router.add_api_route("/models/{model:path}", model, methods=["GET"])
    return router
