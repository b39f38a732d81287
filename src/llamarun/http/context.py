"""What an HTTP handler gets besides its body: the app's serving :class:`Service` (a FastAPI
dependency, so handlers are plain module-level functions) and the request's time limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from ..errors import InvalidParameterError
from ..serving import Service

__all__ = ["ServiceDep", "TIMEOUT_HEADER", "request_timeout", "service_of"]

TIMEOUT_HEADER = "x-request-timeout"


async def service_of(request: Request) -> Service:
    """The serving layer of the app the request came to (async: FastAPI runs a plain function
    dependency on a worker thread, a thread hop on every request for one attribute)."""
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(service_of)]


def request_timeout(service: Service, body_timeout: float | None, headers: Mapping[str, str]) -> float | None:
    """The request's timeout in seconds: its body, else the ``X-Request-Timeout`` header, else the
    server default (0 = none)."""
    if body_timeout is not None:
        return body_timeout
    raw = headers.get(TIMEOUT_HEADER)
    if raw is None:
        return service.timeout(None)
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(f"X-Request-Timeout must be a number of seconds, got {raw[:40]!r}",
                                    field="X-Request-Timeout") from None
    if not 0 < value <= 1e7:
        raise InvalidParameterError("X-Request-Timeout must be between 0 and 1e7 seconds",
                                    field="X-Request-Timeout")
    return value
