"""Anthropic's Messages API: ``POST /v1/messages`` (whole or streamed) and ``/v1/messages/count_tokens``.

- :mod:`.schemas`: request bodies; :mod:`.convert`: content blocks, tools, tool_choice, thinking ->
  the serving layer's chat input; :mod:`.messages`: the handlers; :mod:`.stream`: the event sequence.

Errors on these paths have Anthropic's shape (:func:`llamarun.http.errors.error_body`).
"""

from __future__ import annotations

from fastapi import APIRouter

from .messages import count_tokens, create_message

__all__ = ["anthropic_router"]


def anthropic_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["anthropic"])
    router.add_api_route("/messages", create_message, methods=["POST"])
    router.add_api_route("/messages/count_tokens", count_tokens, methods=["POST"])
    return router
