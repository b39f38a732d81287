"""What the ingress answers itself: the cluster's models, load, health and metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .metrics import cluster_metrics

__all__ = ["view_routes"]


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _forwarder(request: Request) -> Any:
    return request.app.state.forwarder


async def root(request: Request) -> Response:
    return PlainTextResponse("llamarun is running")


async def live(request: Request) -> Response:
    return PlainTextResponse("ok")


async def health(request: Request) -> Response:
    forwarder = _forwarder(request)
    reports = await forwarder.reports()
    served = {status.get("model") for _, status, _ in reports}
    models = [{"name": m.name, "replicas": sum(1 for _, s, _ in reports if s.get("model") == m.name),
               "wanted": m.replicas} for m in forwarder.spec.models]
    ok = all(m.name in served for m in forwarder.spec.models)
    return JSONResponse({"status": "ok" if ok else "loading", "models": models}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    text = cluster_metrics(await _forwarder(request).reports())
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def tags(request: Request) -> Response:
    forwarder = _forwarder(request)
    reports = await forwarder.reports()
    models = []
    for m in forwarder.spec.models:
        status = next((s for _, s, _ in reports if s.get("model") == m.name), {})
        models.append({"name": m.name, "model": m.name, "digest": m.digest.removeprefix("sha256:"),
                       "size": status.get("size", 0), "modified_at": _rfc3339(status.get("started", 0)),
                       "details": {"format": "gguf"}})
    return JSONResponse({"models": models})


async def ps(request: Request) -> Response:
    running = [{"name": s.get("model"), "model": s.get("model"), "digest": str(s.get("digest", "")),
                "size": s.get("size", 0), "replica": replica, "node": s.get("node", ""), "pid": s.get("pid"),
                "slots": s.get("slots", 0), "running": s.get("running", 0), "waiting": s.get("waiting", 0),
                "kv_usage": s.get("kv_usage", 0.0), "expires_at": "0001-01-01T00:00:00Z"}
               for replica, s, _ in await _forwarder(request).reports()]
    return JSONResponse({"models": running})


async def version(request: Request) -> Response:
    from .. import __version__

    return JSONResponse({"version": __version__})


async def models(request: Request) -> Response:
    data = [{"id": m.name, "object": "model", "created": 0, "owned_by": "llamarun"}
            for m in _forwarder(request).spec.models]
    return JSONResponse({"object": "list", "data": data})


def view_routes() -> list[Route]:
    """Routes for ``/``, ``/health``, ``/metrics``, ``/api/tags``, ``/api/ps``, ``/api/version``,
    ``/v1/models``; the rest is forwarded."""
    return [Route("/", root, methods=["GET", "HEAD"]), Route("/health/live", live, methods=["GET", "HEAD"]),
            Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"]),
            Route("/api/tags", tags, methods=["GET"]), Route("/api/ps", ps, methods=["GET"]),
            Route("/api/version", version, methods=["GET"]), Route("/v1/models", models, methods=["GET"])]
