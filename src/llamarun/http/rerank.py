"""``POST /v1/rerank`` and ``POST /rerank``: Jina's and Cohere's rerank shape, as llama-server and vLLM
serve it, for rerankers (GGUFs with rank pooling, e.g. bge-reranker).

    {"model": "bge-reranker", "query": "...", "documents": ["...", {"text": "..."}],
     "top_n": 3, "return_documents": true}
    -> {"id", "model", "object": "list", "usage": {"prompt_tokens", "total_tokens"},
        "results": [{"index", "relevance_score", "document": {"text"}}, ...]}   # most relevant first

Scores are the reranker's raw output (as llama-server returns them: higher is more relevant).
A model that is not a reranker gets a 400 naming it.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..serving import rerank_documents
from .context import ServiceDep
from .streaming import disconnected

__all__ = ["RerankRequest", "rerank", "rerank_router"]

MAX_DOCUMENTS = 1024
MAX_TEXT_CHARS = 1 << 20


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str = Field(..., min_length=1, max_length=300)
    query: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS)
    documents: list[str | dict[str, Any]] = Field(..., min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1, le=MAX_DOCUMENTS)  # more than there are documents: all of them
    return_documents: bool = True

    @field_validator("documents")
    @classmethod
    def _texts(cls, value: list[Any]) -> list[Any]:
        for i, doc in enumerate(value):
            text = doc.get("text") if isinstance(doc, dict) else doc
            if not isinstance(text, str) or not text:
                raise ValueError(f"documents.{i} must be a non-empty string or {{'text': '...'}}")
            if len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"documents.{i} is longer than {MAX_TEXT_CHARS} characters")
        return value


def _text(doc: str | dict[str, Any]) -> str:
    return doc["text"] if isinstance(doc, dict) else doc


async def rerank(body: RerankRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    texts = [_text(d) for d in body.documents]
    gone = disconnected(request.receive)
    lease = await service.acquire(body.model, gone=gone)
    with lease:
        ranked = await rerank_documents(service, lease, body.query, texts, gone=gone)
    results = []
    for index in ranked.order(body.top_n):
        result: dict[str, Any] = {"index": index, "relevance_score": ranked.scores[index]}
        if body.return_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    return {"id": f"rerank-{uuid.uuid4().hex[:24]}", "model": body.model, "object": "list",
            "usage": {"prompt_tokens": ranked.n_tokens, "total_tokens": ranked.n_tokens}, "results": results}


def rerank_router() -> APIRouter:
    router = APIRouter(tags=["rerank"])
    router.add_api_route("/v1/rerank", rerank, methods=["POST"])
    router.add_api_route("/rerank", rerank, methods=["POST"])
    return router
