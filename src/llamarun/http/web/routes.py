"""Routes of the web page and the dashboard.

- ``GET /``: the chat page for a browser (``Accept: text/html``); any other client keeps the
  plain ``llamarun is running`` it always had;
- ``GET /dashboard``: the live dashboard page; ``GET /web/static/{file}``: their scripts and
  styles. These are static (no data), so like ``GET /`` they need no API key;
- ``/web/conversations``: the page's conversations (list and search, read, save, rename, delete,
  export, import); ``GET /web/dashboard/events``: the dashboard's server-sent events, a view
  every ``interval`` seconds until the client leaves or the server drains;
  ``GET /web/dashboard/status``: one view; ``GET /web/catalog``: catalog names to pull.
  All of these need the key when the server has one, and follow the API's Host and CORS rules
  (the guard sits in front of every route).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from .assets import Assets, security_headers
from .conversations import Conversation, ConversationStore
from .dashboard import DashboardFeed

if TYPE_CHECKING:
    from ..metrics import HttpMetrics
    from ...serving import Service
    from ..guard import ServerState

__all__ = ["ROOT_TEXT", "web_router", "wants_html"]

ROOT_TEXT = "llamarun is running"
CONVERSATIONS_FILE = "conversations.db"


class _Rename(BaseModel):
    title: str = Field(..., min_length=1, max_length=200)


class _Import(BaseModel):
    conversations: list[Conversation] = Field(..., max_length=10_000)


def wants_html(request: Request) -> bool:
    """A browser navigating here: ``text/html`` among the accepted types (with a non-zero q)."""
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.partition(";")
        if media.strip().lower() in ("text/html", "application/xhtml+xml"):
            return not any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                           for p in params.split(";"))
    return False


def web_router(service: Service, metrics: HttpMetrics, state: ServerState) -> APIRouter:
    router = APIRouter(tags=["web"], include_in_schema=False)
    assets = Assets()
    feed = DashboardFeed(service.manager, metrics, state)
    conversations = ConversationStore(_home(service) / CONVERSATIONS_FILE)

    def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            return JSONResponse({"error": f"no file {name[:100]!r}"}, status_code=404)
        body, kind, etag = found
        headers = {**security_headers(), "ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=kind, headers=headers)

    @router.get("/", response_model=None)
    async def root(request: Request) -> Response:
        if wants_html(request):
            response = asset("chat.html", request)
            response.headers["Vary"] = "Accept"
            return response
        return PlainTextResponse(ROOT_TEXT, headers={"Vary": "Accept"})

    @router.get("/dashboard", response_model=None)
    async def dashboard(request: Request) -> Response:
        return asset("dashboard.html", request)

    @router.get("/web/static/{name:path}", response_model=None)
    async def static(name: str, request: Request) -> Response:
        return asset(name, request)

    @router.get("/web/catalog")
    async def catalog() -> dict[str, Any]:
        from ...store import load_catalog

        entries = await service.blocking(load_catalog)
        return {"models": [{"name": e.name, "size": e.size, "description": e.description}
                           for e in sorted(entries.values(), key=lambda e: e.name)]}

    _conversation_routes(router, service, conversations)

    @router.get("/web/dashboard/status")
    async def dashboard_status() -> dict[str, Any]:
        return await service.blocking(feed.view)

    @router.get("/web/dashboard/events")
    async def dashboard_events(interval: float = Query(1.0, ge=0.2, le=60.0)) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            while not state.draining:
                view = await service.blocking(feed.view)
                yield f"event: status\ndata: {json.dumps(view, separators=(',', ':'))}\n\n"
                await asyncio.sleep(interval)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


def _conversation_routes(router: APIRouter, service: Service, store: ConversationStore) -> None:
    @router.get("/web/conversations")
    async def list_conversations(q: str = Query("", max_length=200),
                                 limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
        found = await service.blocking(store.list, q, limit)
        return {"conversations": [c.model_dump() for c in found]}

    @router.post("/web/conversations", status_code=201)
    async def create_conversation(body: Conversation) -> dict[str, Any]:
        return (await service.blocking(store.save, body, new=True)).model_dump()

    @router.get("/web/conversations/export")
    async def export_conversations() -> JSONResponse:
        found = await service.blocking(store.export)
        return JSONResponse({"conversations": [c.model_dump() for c in found]},
                            headers={"Content-Disposition": 'attachment; filename="llamarun-conversations.json"'})

    @router.post("/web/conversations/import")
    async def import_conversations(body: _Import) -> dict[str, Any]:
        def save_all() -> list[str]:
            return [store.save(c, new=True).id for c in body.conversations]

        return {"imported": await service.blocking(save_all)}

    @router.get("/web/conversations/{conversation_id}")
    async def get_conversation(conversation_id: str) -> dict[str, Any]:
        return (await service.blocking(store.get, conversation_id)).model_dump()

    @router.put("/web/conversations/{conversation_id}")
    async def put_conversation(conversation_id: str, body: Conversation) -> dict[str, Any]:
        changed = body.model_copy(update={"id": conversation_id})
        return (await service.blocking(store.save, Conversation.model_validate(changed.model_dump()))).model_dump()

    @router.patch("/web/conversations/{conversation_id}")
    async def rename_conversation(conversation_id: str, body: _Rename) -> dict[str, Any]:
        return (await service.blocking(store.rename, conversation_id, body.title)).model_dump()

    @router.delete("/web/conversations/{conversation_id}", status_code=204)
    async def delete_conversation(conversation_id: str) -> Response:
        await service.blocking(store.delete, conversation_id)
        return Response(status_code=204)


def _home(service: Service) -> Any:
    from pathlib import Path

    root = getattr(service.store, "root", None)
    if root is None:
        from ...config import home_dir

        root = home_dir()
    return Path(root)
