"""The gate every HTTP request passes: drain state, Host check, API key, body limits.

A pure ASGI middleware (no buffering, streaming and disconnects pass through):

- while draining (SIGTERM), new requests get 503 with ``Retry-After``;
- bound to loopback, a ``Host`` header that is not a loopback name is refused
  with 403: a web page on another domain cannot reach the API through DNS
  rebinding (CVE-2024-28224);
- with an API key, every request except ``GET /``, ``/health/live`` and the web page's own files
  (``/dashboard`` and ``/web/static/``: static, no data; the page asks for the key and sends it on
  every API call) must carry ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (Anthropic's
  clients; 401 otherwise);
- a state-changing request (any method but GET, HEAD, OPTIONS) from a browser page
  of another origin is refused with 403: an ``Origin`` that is neither the server's
  own nor one of ``cors_origins`` (``null`` included), or ``Sec-Fetch-Site:
  cross-site``/``same-site`` without such an origin (CORS only hides the reply: the
  request would run);
- a body sent to the JSON APIs must say it is JSON (``application/json`` or
  ``application/*+json``): anything else, the form and ``text/plain`` types a page can
  send without a preflight included, is refused with 415; a blob upload may be
  ``application/octet-stream`` (or JSON, which the ``ollama`` client sends) but not a
  form or text type;
- request bodies are capped (``Content-Length`` checked up front, chunked
  bodies counted as they arrive: 413) and compressed bodies refused (415), so a
  gzip bomb or an endless body cannot exhaust memory (CVE-2024-12886).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from .config import HttpConfig, is_loopback_host
from .errors import error_body

__all__ = ["BodyTooLarge", "Guard", "ServerState"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_OPEN_PATHS = frozenset({("GET", "/"), ("HEAD", "/"), ("GET", "/health/live"), ("HEAD", "/health/live"),
                         ("GET", "/dashboard"), ("HEAD", "/dashboard")})
_OPEN_PREFIX = "/web/static/"  # the web page's scripts and styles (GET and HEAD)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CROSS_SITES = frozenset({"cross-site", "same-site"})  # same-site: another port of localhost is another origin
_BROWSER_SIMPLE_TYPES = frozenset({"text/plain", "multipart/form-data", "application/x-www-form-urlencoded"})
_UPLOAD_PREFIX = "/api/blobs/"  # model files uploaded for /api/create: max_upload_bytes, not max_body_bytes


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes",
                         headers={"Connection": "close"})


class ServerState:
    """What the gate knows about the whole server: in-flight requests and whether it drains."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight (True) or ``timeout`` passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.inflight > 0:
            self._idle = asyncio.Event()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except asyncio.TimeoutError:
                return self.inflight == 0
        return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _host_name(host_header: str) -> str:
    host = host_header.strip()
    if host.startswith("["):  # [::1]:port
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware enforcing :class:`HttpConfig`'s security defaults and the drain state."""

    def __init__(self, app: ASGIApp, config: HttpConfig, state: ServerState) -> None:
        self.app = app
        self.config = config
        self.state = state
        self._allowed = {h.lower() for h in config.allowed_hosts}
        self._origins = {o.strip().rstrip("/").lower() for o in config.cors_origins}
        self._key = config.api_key.encode() if config.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status, message, headers = refusal
            await _send_error(send, scope["path"], status, message, headers)
            return
        if scope["method"] not in _SAFE_METHODS and scope["path"].startswith(("/api/", "/v1/")):
            scope = _as_json(scope)
        self.state.enter()
        try:
            await self._forward(scope, receive, send)
        finally:
            self.state.leave()

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        if self.config.loopback:
            host = _header(scope, b"host")
            name = _host_name(host) if host is not None else ""
            if host is not None and not is_loopback_host(name) and name.lower() not in self._allowed:
                return 403, f"host {host[:100]!r} is not allowed: this server answers only to localhost names", {}
        if self.state.draining:
            return 503, "the server is shutting down; retry on another instance", {"Retry-After": "5",
                                                                                      "Connection": "close"}
        refused = self._cross_origin(scope) if scope["method"] not in _SAFE_METHODS else None
        if refused is not None:
            return refused
        if self._key is not None and not _is_open(scope):
            auth = _header(scope, b"authorization")
            scheme, _, token = (auth or "").partition(" ")
            if auth is None and _header(scope, b"x-api-key") is not None:  # Anthropic's clients send this
                scheme, token = "bearer", _header(scope, b"x-api-key") or ""
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
                return 401, "missing or wrong API key: send Authorization: Bearer <key> or x-api-key: <key>", {
                    "WWW-Authenticate": "Bearer"}
        encoding = (_header(scope, b"content-encoding") or "identity").strip().lower()
        if encoding not in ("", "identity"):
            return 415, f"compressed request bodies ({encoding[:40]}) are not accepted", {}
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return 400, "invalid Content-Length", {}
            limit = self._body_limit(scope)
            if int(length) > limit:
                return 413, f"request body is larger than the limit of {limit} bytes", {}
        return _content_type_refusal(scope) if scope["method"] not in _SAFE_METHODS else None

    def _cross_origin(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        """403 for a state-changing request a browser sent from a page of another origin."""
        origin = _header(scope, b"origin")
        site = (_header(scope, b"sec-fetch-site") or "").strip().lower()
        if origin is None:
            if site in _CROSS_SITES:
                return 403, (f"cross-origin request refused (Sec-Fetch-Site: {site}): a web page of another "
                             "origin cannot change this server's state; allow it with --cors-origin"), {}
            return None
        if self._origin_allowed(scope, origin):
            return None
        return 403, (f"cross-origin request refused: origin {origin[:100]!r} is not allowed to change this "
                     "server's state (allow it with --cors-origin)"), {}

    def _origin_allowed(self, scope: Scope, origin: str) -> bool:
        name = origin.strip().rstrip("/").lower()
        if "*" in self._origins or name in self._origins:
            return True
        if not self.config.loopback:  # no Host check there: a rebound name would pass as "its own" origin
            return False
        host = (_header(scope, b"host") or "").strip().lower()
        return bool(host) and name == f"{scope.get('scheme', 'http')}://{host}"  # the server's own pages

    def _body_limit(self, scope: Scope) -> int:
        """Model files uploaded to ``/api/blobs`` have a limit of their own; other bodies are small."""
        if scope["method"] == "POST" and scope["path"].startswith(_UPLOAD_PREFIX):
            return self.config.max_upload_bytes
        return self.config.max_body_bytes

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._body_limit(scope)
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if not started:
                await _send_error(send, scope["path"], 413, str(exc.detail), {"Connection": "close"})


def _is_open(scope: Scope) -> bool:
    """Answered without the API key: the root, liveness, and the web page's static files."""
    method, path = scope["method"], scope["path"]
    return (method, path) in _OPEN_PATHS or (method in ("GET", "HEAD") and path.startswith(_OPEN_PREFIX))


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return _header(scope, b"transfer-encoding") is not None


def _content_type_refusal(scope: Scope) -> tuple[int, str, dict[str, str]] | None:
    """415 for a body that is not JSON on the JSON APIs, or a form or text body on a blob upload."""
    if not _has_body(scope):
        return None
    raw = _header(scope, b"content-type")
    media = (raw or "").split(";", 1)[0].strip().lower()
    shown = repr(raw[:100]) if raw is not None else "none"
    if scope["path"].startswith(_UPLOAD_PREFIX):
        if media in _BROWSER_SIMPLE_TYPES:
            return 415, (f"a blob upload must be sent as Content-Type: application/octet-stream "
                         f"(got {shown})"), {}
        return None
    kind, _, subtype = media.partition("/")
    if kind == "application" and (subtype == "json" or subtype.endswith("+json")):
        return None
    return 415, f"request bodies must be JSON: send Content-Type: application/json (got {shown})", {}


def _as_json(scope: Scope) -> Scope:
    """Request bodies of the APIs are parsed as JSON (the content type was checked: any
    ``application/*+json`` or charset reads the same way). Changes ``scope`` in place: outer
    middleware reads what routing adds to it."""
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"content-type"]
    scope["headers"] = [*headers, (b"content-type", b"application/json")]
    return scope


async def _send_error(send: Send, path: str, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps(error_body(path, status, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
