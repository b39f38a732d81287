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
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from .assets import security_headers
from .conversation_routes import add_conversation_routes
from .state import WebDep, WebState

__all__ = ["ROOT_TEXT", "WebState", "wants_html", "web_router"]

ROOT_TEXT = "llamarun is running"


def wants_html(request: Request) -> bool:
    """A browser navigating here: ``text/html`` among the accepted types (with a non-zero q)."""
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.partition(";")
        if media.strip().lower() in ("text/html", "application/xhtml+xml"):
            return not any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                           for p in params.split(";"))
    return False


def web_router() -> APIRouter:
    """The page, the dashboard and their data (the app's ``state.web`` must be a :class:`WebState`)."""
    router = APIRouter(tags=["web"], include_in_schema=False)
    router.add_api_route("/", root, methods=["GET"], response_model=None)
    router.add_api_route("/dashboard", dashboard, methods=["GET"], response_model=None)
    router.add_api_route("/web/static/{name:path}", static, methods=["GET"], response_model=None)
    router.add_api_route("/web/catalog", catalog, methods=["GET"])
    add_conversation_routes(router)
    router.add_api_route("/web/dashboard/status", dashboard_status, methods=["GET"])
    router.add_api_route("/web/dashboard/events", dashboard_events, methods=["GET"])
    return router


def _asset(web: WebState, name: str, request: Request) -> Response:
    found = web.assets.get(name)
    if found is None:
        return JSONResponse({"error": f"no file {name[:100]!r}"}, status_code=404)
    body, kind, etag = found
    headers = {**security_headers(), "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=kind, headers=headers)


async def root(request: Request, web: WebDep) -> Response:
    if wants_html(request):
        response = _asset(web, "chat.html", request)
        response.headers["Vary"] = "Accept"
        return response
    return PlainTextResponse(ROOT_TEXT, headers={"Vary": "Accept"})


async def dashboard(request: Request, web: WebDep) -> Response:
    return _asset(web, "dashboard.html", request)


async def static(name: str, request: Request, web: WebDep) -> Response:
    return _asset(web, name, request)


async def catalog(web: WebDep) -> dict[str, Any]:
    from ...store import load_catalog

    entries = await web.service.blocking(load_catalog)
    return {"models": [{"name": e.name, "size": e.size, "description": e.description}
                       for e in sorted(entries.values(), key=lambda e: e.name)]}


async def dashboard_status(web: WebDep) -> dict[str, Any]:
    return await web.service.blocking(web.feed.view)


async def _events(web: WebState, interval: float) -> AsyncIterator[str]:
    while not web.state.draining:
        view = await web.service.blocking(web.feed.view)
        yield f"event: status\ndata: {json.dumps(view, separators=(',', ':'))}\n\n"
        await asyncio.sleep(interval)


async def dashboard_events(web: WebDep, interval: float = Query(1.0, ge=0.2, le=60.0)) -> StreamingResponse:
    return StreamingResponse(_events(web, interval), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
