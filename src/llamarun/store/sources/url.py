"""Plain ``https://`` (and ``http://``) URLs, verified with ``--sha256`` or recorded with their digest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from ...errors import InvalidNameError
from ..blobs import BlobInfo
from ..download import BlobRequest, download_blob
from ..names import derive_name
from .base import FetchContext, PullPlan, pull_label

__all__ = ["UrlSource", "parse_url_source"]

_MAX_URL = 4096
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class UrlSource:
    url: str

    def plan(self, ctx: FetchContext) -> PullPlan:
        return PullPlan(source=self.url, default_name=derive_name(self.stem()), fetch=self._fetch,
                        name_derived=True)

    def stem(self) -> str:
        name = PurePosixPath(unquote(urlsplit(self.url).path)).name or urlsplit(self.url).hostname or "model"
        return name[:-5] if name.lower().endswith(".gguf") else name

    def _fetch(self, ctx: FetchContext, sha256: str | None, key: str) -> BlobInfo:
        req = BlobRequest(self.url, key, sha256=sha256, label=pull_label(sha256, self.stem()))
        return download_blob(ctx.layout, req, ctx.policy, ctx.emit)


def parse_url_source(text: str) -> UrlSource:
    """Validate an ``http(s)://`` URL without touching the network."""
    if not isinstance(text, str) or len(text) > _MAX_URL or _BAD_CHARS.search(text):
        raise InvalidNameError(f"invalid URL {str(text)[:200]!r}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise InvalidNameError(f"invalid URL {text[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidNameError(f"invalid URL {text[:200]!r}: expected http(s)://host/path")
    if parts.username or parts.password:
        raise InvalidNameError(f"URL {parts.hostname}: credentials in URLs are not accepted (they would be "
                               "recorded in the manifest)")
    return UrlSource(text)
