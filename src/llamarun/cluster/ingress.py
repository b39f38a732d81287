"""The cluster's front door: the same HTTP API as ``llamarun serve``, each request forwarded to a
replica of the model it names, through Ray Serve's handles (capacity- and prefix-aware routing).

The ingress holds no model. It applies ``llamarun serve``'s rules (Host check,
API key, CORS, body limits: :class:`~llamarun.http.guard.Guard`), answers the
cluster's view itself (``/api/tags``, ``/v1/models``, ``/api/ps``, ``/metrics``,
``/health``), refuses store changes (a cluster's models come from its spec),
and streams each replica's answer back as it comes. A client that leaves
cancels the call, and with it the request on the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..http.config import HttpConfig
from ..http.errors import error_body, install_error_handlers
from ..http.guard import Guard, ServerState
from ..http.streaming import WatchedStreamingResponse, until_disconnect
from ..serving import CallerGone
from .asgi import ForwardedCall, ResponseStart
from .spec import ClusterSpec

__all__ = ["Forwarder", "build_ingress_app", "request_prefix"]

logger = logging.getLogger(__name__)

_DROPPED_HEADERS = {b"host", b"authorization", b"x-api-key", b"origin", b"cookie", b"content-length",
                    b"transfer-encoding", b"connection"}
_BACKPRESSURE_RETRIES_S = (0.01, 0.02, 0.04, 0.08, 0.16)  # pauses before a refusal is the answer
_STORE_CHANGES = ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs")


def request_prefix(body: Mapping[str, Any]) -> str:
    """The text a request starts with, for prefix routing: its system prompt and messages in
    order, or its prompt (a follow-up turn starts with the text of the turn before)."""
    parts = []
    for key in ("system", "instructions"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                parts.append(f"\x1e{m.get('role', '')}\x1f{_text(m.get('content'))}")
    for key in ("prompt", "input"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    return "".join(parts)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _error(path: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(path, status, message), status_code=status, headers=dict(headers or {}))


class Forwarder:
    """Forwards requests to the model deployments' handles."""

    def __init__(self, spec: ClusterSpec, handles: Mapping[str, Any], board: Any) -> None:
        self.spec, self.board = spec, board
        self.handles: dict[str, Any] = {}
        for model in spec.models:
            handle = handles[model.name].options(stream=True)
            self.handles[model.name] = handle
            if ":" not in model.name:
                self.handles[f"{model.name}:latest"] = handle

    async def reports(self) -> list[tuple[str, dict[str, Any], str]]:
        return await self.board.reports.remote()  # type: ignore[no-any-return]

    async def forward(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith(_STORE_CHANGES):
            return _error(path, 400, "a cluster serves the models of its spec: pull or create models on the nodes' "
                                     "stores and redeploy (llamarun cluster serve MODEL...)")
        body = await request.body()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError as exc:
            return _error(path, 400, f"request body is not valid JSON: {exc}")
        except RecursionError:
            return _error(path, 400, "request body is not valid JSON: nested too deeply")
        model = parsed.get("model") if isinstance(parsed, dict) else None
        if not isinstance(model, str) or not model:
            return _error(path, 400, "model: field required (the cluster routes by model)")
        if "keep_alive" in parsed:  # refused, not dropped: a request must not unload a replica's model
            return _error(path, 400, "keep_alive: a cluster keeps its models loaded on its replicas; "
                                     "scale them with --replicas / --min-replicas instead")
        handle = self.handles.get(model)
        if handle is None:
            served = ", ".join(m.name for m in self.spec.models)
            return _error(path, 404, f'model "{model}" is not served by this cluster (it serves: {served})')
        headers = tuple((k, v) for k, v in request.scope["headers"] if k.lower() not in _DROPPED_HEADERS)
        call = ForwardedCall(request.method, path, request.scope.get("query_string", b""), headers, body,
                             prefix=request_prefix(parsed))
        return await self._answer(request, handle, call)

    async def _answer(self, request: Request, handle: Any, call: ForwardedCall) -> Response:
        path = request.url.path
        started = await _start(request, handle, call)
        if isinstance(started, Response):
            return started
        stream, start = started
        if not isinstance(start, ResponseStart):
            _cancel(stream)
            return _error(path, 502, "the replica answered without a status")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.headers
                   if k.lower() not in (b"transfer-encoding", b"connection", b"content-length")}
        return WatchedStreamingResponse(_body(stream, path), status_code=start.status, headers=headers,
                                        media_type=headers.get("content-type", "application/json"),
                                        on_close=[lambda: _cancel(stream)])


async def _start(request: Request, handle: Any, call: ForwardedCall) -> tuple[Any, Any] | Response:
    """Call a replica and wait for its answer to begin: the call and its first message, or the
    error response. Ray counts a request as queued until its router has picked a replica, so
    requests arriving together can be refused for a queue that is full only for a moment
    (ray/serve/_private/router.py says as much); a refusal is retried over about 0.3 s (pauses
    jittered, so a refused burst does not come back as one) before it is the client's 503, and a
    queue that stays full still answers 503."""
    path = request.url.path
    for pause in (*_BACKPRESSURE_RETRIES_S, None):
        stream = None
        try:
            stream = handle.handle.remote(call)
            return stream, await until_disconnect(request.receive, stream.__anext__())
        except CallerGone:
            _cancel(stream)
            return Response(status_code=499)  # nobody reads it
        except Exception as exc:  # noqa: BLE001 - Ray's errors: back-pressure, a dead replica
            if stream is not None:
                _cancel(stream)
            if pause is None or not _refused_for_now(exc):
                return _ray_error(path, exc)
        try:
            await until_disconnect(request.receive, asyncio.sleep(pause * random.uniform(0.5, 1.5)))
        except CallerGone:
            return Response(status_code=499)
    raise AssertionError("unreachable: the last pause is None")


def _refused_for_now(exc: BaseException) -> bool:
    """Whether Ray's router refused the call (back-pressure), not a replica's own error."""
    from ray.exceptions import RayTaskError
    from ray.serve.exceptions import BackPressureError

    return isinstance(exc, BackPressureError) and not isinstance(exc, RayTaskError)


def _cancel(stream: Any) -> None:
    """Cancel a call (a call that failed to route raises its error again when cancelled)."""
    with contextlib.suppress(Exception):
        stream.cancel()


async def _body(stream: Any, path: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    except Exception as exc:  # noqa: BLE001 - the replica died mid-answer: say so in the stream
        logger.warning("replica failed mid-answer on %s: %s", path, exc)
        line = json.dumps(error_body(path, 502, f"the replica serving this request failed: {type(exc).__name__}"))
        yield (f"data: {line}\n\n" if path.startswith("/v1/") else line + "\n").encode()


def _ray_error(path: str, exc: BaseException) -> JSONResponse:
    from ray.serve.exceptions import BackPressureError


    if isinstance(exc, StopAsyncIteration):
        return _error(path, 502, "the replica ended the answer before it began")
    if isinstance(exc, BackPressureError):
        return _error(path, 503, "every replica is busy and the cluster's queue is full: retry later",
                      {"Retry-After": "1"})
    logger.warning("replica call failed on %s: %s", path, exc)
    return _error(path, 503, f"no replica could serve the request ({type(exc).__name__}): retry later",
                  {"Retry-After": "1"})


async def _forward(request: Request) -> Response:
    return await request.app.state.forwarder.forward(request)  # type: ignore[no-any-return]


def build_ingress_app(spec: ClusterSpec, forwarder: Forwarder) -> Any:
    """The ingress's ASGI app (Guard outermost, as in ``llamarun serve``)."""
    from .views import view_routes

    config = HttpConfig(host=spec.host, port=spec.port, api_key=spec.api_key, insecure=spec.insecure)

    routes = [*view_routes(), Route("/{path:path}", _forward, methods=["POST", "DELETE"])]
    app = Starlette(routes=routes)
    app.state.forwarder = forwarder
    install_error_handlers(app)  # type: ignore[arg-type] - a body over the limit mid-read is a 413 in the API's shape
    app.add_middleware(Guard, config=config, state=ServerState())  # type: ignore[arg-type]
    return app

