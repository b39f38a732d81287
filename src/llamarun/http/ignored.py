"""Unknown top-level request fields: accepted (as OpenAI's and Ollama's clients expect), but logged
and named in the ``X-Llamarun-Ignored-Fields`` response header, never silently dropped.

Request bodies keep what they do not know (pydantic ``extra="allow"`` on the top-level models);
:class:`IgnoredFieldsRoute` wraps every endpoint of a router so that the extras of its body reach
the header. A field llamarun knows but cannot honour is refused by the handler (a 400), not here.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

__all__ = ["IGNORED_HEADER", "IgnoredFieldsRoute", "ignored_fields", "noting_ignored"]

logger = logging.getLogger(__name__)

IGNORED_HEADER = "X-Llamarun-Ignored-Fields"
_MAX_NAMED = 32  # names in the header; more are counted
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-$@]{1,64}")


def ignored_fields(values: Iterable[Any]) -> list[str]:
    """The unknown top-level fields of the request bodies among ``values``, sorted."""
    names: set[str] = set()
    for value in values:
        if isinstance(value, BaseModel) and value.model_extra:
            names.update(value.model_extra)
    return sorted(names)


def _header_value(names: list[str]) -> str:
    shown = [n if _SAFE_NAME.fullmatch(n) else "?" for n in names[:_MAX_NAMED]]  # never a header injection
    if len(names) > _MAX_NAMED:
        shown.append(f"(+{len(names) - _MAX_NAMED} more)")
    return ", ".join(shown)


def noting_ignored(endpoint: Callable[..., Any], path: str = "") -> Callable[..., Awaitable[Any]]:
    """``endpoint`` with its body's unknown fields logged and named in :data:`IGNORED_HEADER` (the
    signature FastAPI reads is the endpoint's own)."""
    if getattr(endpoint, "_notes_ignored", False):
        return endpoint

    @functools.wraps(endpoint)
    async def wrapper(**kwargs: Any) -> Any:
        if inspect.iscoroutinefunction(endpoint):
            result = await endpoint(**kwargs)
        else:
            result = await run_in_threadpool(endpoint, **kwargs)
        names = ignored_fields(kwargs.values())
        if not names:
            return result
        logger.info("%s: ignored unknown request fields %s", path or endpoint.__name__, names[:_MAX_NAMED])
        response = result if isinstance(result, Response) else JSONResponse(jsonable_encoder(result))
        response.headers[IGNORED_HEADER] = _header_value(names)
        return response

    wrapper._notes_ignored = True  # type: ignore[attr-defined]
    return wrapper


class IgnoredFieldsRoute(APIRoute):
    """An API route whose endpoint reports its body's unknown fields (``APIRouter(route_class=...)``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, noting_ignored(endpoint, path), **kwargs)
