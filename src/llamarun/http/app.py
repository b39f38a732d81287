"""``create_app``: the FastAPI app serving Ollama's and OpenAI's APIs over the model manager.

Everything the app needs hangs off the app object (``app.state.service``):
no module globals, so tests and embedding programs can build several apps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..runtime import HealthStatus, ManagerConfig, ModelManager
from ..serving import Service, ServingConfig, store_resolver
from .anthropic import anthropic_router
from .config import HttpConfig
from .context import ServiceDep
from .errors import install_error_handlers
from .guard import Guard, ServerState
from .metrics import HttpMetrics, MetricsMiddleware
from .ollama import ollama_router
from .openai import openai_router
from .openai.responses_store import ResponseStore
from .rerank import rerank_router

__all__ = ["create_app", "store_resolver"]

logger = logging.getLogger(__name__)


def create_app(config: HttpConfig | None = None, *, manager: ModelManager | None = None, store: Any = None,
               manager_config: ManagerConfig | None = None, state: ServerState | None = None,
               service: Service | None = None) -> FastAPI:
    """Build the app. Without ``manager``, one is made over ``store`` (default: the user's store)
    and closed with the app; a given manager belongs to the caller. A given ``service`` (shared with
    other frontends, e.g. gRPC) is used as it is and belongs to the caller too."""
    config = config or HttpConfig()
    if service is not None:
        manager, store = service.manager, service.store
    if store is None:
        from ..store import ModelStore

        store = ModelStore()
    owns_manager, owns_service = manager is None, service is None
    if manager is None:
        manager = ModelManager(manager_config or ManagerConfig(), resolve=store_resolver(store))
    state = state or ServerState()
    service = service or Service(manager, store, ServingConfig(
        request_timeout=config.request_timeout, stream_interval=config.stream_interval, version=config.version,
        fallback_template=config.fallback_template))
    metrics = HttpMetrics(manager, state)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_manager:
                await service.blocking(manager.close, 0.0)
            if owns_service:
                service.close()

    app = FastAPI(title="llamarun", version=config.version, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Ollama- and OpenAI-compatible API of a local llama.cpp runtime.")
    app.state.service = service
    app.state.responses = ResponseStore.in_home(getattr(store, "root", None))  # /v1/responses, bounded
    app.state.server_state = state
    app.state.metrics = metrics
    install_error_handlers(app)
    if config.web:  # before the admin routes: a browser asking for / gets the page
        from .web import WebState, web_router

        app.state.web = WebState.build(service, metrics, state)
        app.include_router(web_router())
    app.include_router(_admin_router())
    app.include_router(ollama_router())
    app.include_router(openai_router())
    app.include_router(anthropic_router())
    app.include_router(rerank_router())
    app.add_middleware(Guard, config=config, state=state)  # type: ignore[arg-type]
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),  # type: ignore[arg-type]
                           allow_methods=["GET", "POST", "DELETE", "HEAD", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-Timeout", "X-Api-Key",
                                          "Anthropic-Version"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # type: ignore[arg-type]
    return app


def _admin_router() -> APIRouter:
    router = APIRouter(tags=["server"])
    router.add_api_route("/", root, methods=["GET"], response_class=PlainTextResponse)
    router.add_api_route("/", root_head, methods=["HEAD"])
    router.add_api_route("/health", health, methods=["GET"])
    router.add_api_route("/health/live", live, methods=["GET"], response_class=PlainTextResponse)
    router.add_api_route("/health/live", live_head, methods=["HEAD"])
    router.add_api_route("/metrics", prometheus, methods=["GET"])
    return router


async def root() -> str:
    return "llamarun is running"


async def root_head() -> Response:
    return Response(status_code=200, media_type="text/plain")


async def health(request: Request, service: ServiceDep) -> JSONResponse:
    return _health(service, request.app.state.server_state)


async def live() -> str:
    """Liveness for probes: answered without the API key, says nothing about models."""
    return "ok"


async def live_head() -> Response:
    return Response(status_code=200, media_type="text/plain")


async def prometheus(request: Request, service: ServiceDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = await service.blocking(generate_latest, request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _health(service: Service, state: ServerState) -> JSONResponse:
    models = []
    status = "ok"
    for s in service.manager.status():
        h = s.health
        entry: dict[str, Any] = {"name": s.name, "state": s.state, "in_use": s.in_use,
                                 "n_ctx": s.config.n_ctx, "slots": s.config.n_slots}
        if h is not None:
            entry.update(status=h.status.value, running=h.running, waiting=h.waiting, error=h.error)
            if h.status == HealthStatus.ERROR:
                status = "error"
        else:
            entry["status"] = "loading"
        if s.state == "loading" and status == "ok":
            status = "loading"
        models.append(entry)
    if state.draining:
        status = "stopping"
    code = 503 if status in ("stopping", "error") else 200
    in_flight = max(0, state.inflight - 1)  # not this /health request itself
    return JSONResponse({"status": status, "models": models, "in_flight": in_flight}, status_code=code)
