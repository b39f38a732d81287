"""Errors as each protocol spells them: Ollama's ``{"error": "..."}``, OpenAI's error object and
Anthropic's ``{"type": "error", "error": {"type", "message"}}``.

The protocol is chosen by path: ``/v1/messages...`` is Anthropic, other ``/v1/...`` OpenAI,
everything else Ollama.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import LlamarunError, ModelNotFoundError, OverloadedError
from ..serving import CallerGone, codes_of

__all__ = [
    "ClientDisconnected",
    "error_body",
    "error_response",
    "install_error_handlers",
    "is_anthropic_path",
    "is_openai_path",
    "status_of",
    "validation_message",
]

logger = logging.getLogger(__name__)

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 415: "invalid_request_error",
                 429: "rate_limit_error", 499: "request_cancelled", 503: "overloaded_error", 504: "timeout_error"}


ClientDisconnected = CallerGone
"""The client went away before the response was ready (logged as 499, nobody reads it)."""


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
                    429: "rate_limit_error", 499: "invalid_request_error", 503: "overloaded_error",
                    504: "timeout_error"}


def is_anthropic_path(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (llamarun's errors: :data:`llamarun.errors.ERROR_CODES`)."""
    if isinstance(exc, HTTPException):
        return exc.status_code
    return codes_of(exc).http


def error_body(path: str, status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    if is_anthropic_path(path):
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if is_openai_path(path):
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return {"error": message}


def _headers(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, OverloadedError):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, HTTPException) and exc.headers:
        return dict(exc.headers)
    return {}


def error_response(path: str, exc: BaseException) -> JSONResponse:
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, LlamarunError):
        logger.exception("internal error on %s", path, exc_info=exc)
        message = "internal server error"
    else:
        message = exc.detail if isinstance(exc, HTTPException) else str(exc)
    param = getattr(exc, "field", None)
    code = "model_not_found" if isinstance(exc, ModelNotFoundError) else None
    return JSONResponse(error_body(path, status, str(message), param=param, code=code), status_code=status,
                        headers=_headers(exc))


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """A short message naming the first offending field (``options.temperature: ...``)."""
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', message)}", None
    if first.get("type") == "missing":
        return f"{field}: field required", field
    text = f"{field}: {message}" if field else message
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text, field


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = validation_message(exc)
        return JSONResponse(error_body(request.url.path, 400, message, param=field), status_code=400)

    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(request.url.path, exc)

    async def on_llamarun(request: Request, exc: LlamarunError) -> JSONResponse:
        return error_response(request.url.path, exc)

    async def on_disconnect(request: Request, exc: ClientDisconnected) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, 499, "client disconnected"), status_code=499)

    async def on_other(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request.url.path, exc)

    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(LlamarunError, on_llamarun)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnected, on_disconnect)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_other)
