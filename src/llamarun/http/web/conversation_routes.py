"""``/web/conversations``: the page's conversations kept server-side (list and search, read, save,
rename, delete, export, import)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .conversations import Conversation
from .state import WebDep

__all__ = ["add_conversation_routes"]


class _Rename(BaseModel):
    title: str = Field(..., min_length=1, max_length=200)


class _Import(BaseModel):
    conversations: list[Conversation] = Field(..., max_length=10_000)


def add_conversation_routes(router: APIRouter) -> None:
    path = "/web/conversations"
    router.add_api_route(path, list_conversations, methods=["GET"])
    router.add_api_route(path, create_conversation, methods=["POST"], status_code=201)
    router.add_api_route(f"{path}/export", export_conversations, methods=["GET"])
    router.add_api_route(f"{path}/import", import_conversations, methods=["POST"])
    router.add_api_route(f"{path}/{{conversation_id}}", get_conversation, methods=["GET"])
    router.add_api_route(f"{path}/{{conversation_id}}", put_conversation, methods=["PUT"])
    router.add_api_route(f"{path}/{{conversation_id}}", rename_conversation, methods=["PATCH"])
    router.add_api_route(f"{path}/{{conversation_id}}", delete_conversation, methods=["DELETE"], status_code=204)


async def list_conversations(web: WebDep, q: str = Query("", max_length=200),
                             limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
    found = await web.service.blocking(web.conversations.list, q, limit)
    return {"conversations": [c.model_dump() for c in found]}


async def create_conversation(body: Conversation, web: WebDep) -> dict[str, Any]:
    return (await web.service.blocking(web.conversations.save, body, new=True)).model_dump()


async def export_conversations(web: WebDep) -> JSONResponse:
    found = await web.service.blocking(web.conversations.export)
    return JSONResponse({"conversations": [c.model_dump() for c in found]},
                        headers={"Content-Disposition": 'attachment; filename="llamarun-conversations.json"'})


async def import_conversations(body: _Import, web: WebDep) -> dict[str, Any]:
    store = web.conversations
    ids = await web.service.blocking(lambda: [store.save(c, new=True).id for c in body.conversations])
    return {"imported": ids}


async def get_conversation(conversation_id: str, web: WebDep) -> dict[str, Any]:
    return (await web.service.blocking(web.conversations.get, conversation_id)).model_dump()


async def put_conversation(conversation_id: str, body: Conversation, web: WebDep) -> dict[str, Any]:
    changed = Conversation.model_validate(body.model_copy(update={"id": conversation_id}).model_dump())
    return (await web.service.blocking(web.conversations.save, changed)).model_dump()


async def rename_conversation(conversation_id: str, body: _Rename, web: WebDep) -> dict[str, Any]:
    return (await web.service.blocking(web.conversations.rename, conversation_id, body.title)).model_dump()


async def delete_conversation(conversation_id: str, web: WebDep) -> Response:
    await web.service.blocking(web.conversations.delete, conversation_id)
    return Response(status_code=204)
