"""The web page's files, shipped in the package (``static/``), and the headers they are served with.

Only files of the fixed list :data:`ASSETS` are served, read once on first use. Every page has a
strict Content-Security-Policy: scripts and styles only from this server's own files (no inline
script or style, no ``eval``), connections only to this origin, no frames, forms or plugins; model
output is sanitized before it reaches the page, and the policy is the second wall.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources

__all__ = ["ASSETS", "CSP", "Assets", "security_headers"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}

# name under /web/static/ -> file under static/ (licenses served beside the vendored libraries)
ASSETS = (
    "chat.html", "dashboard.html", "chat.js", "dashboard.js", "common.js", "style.css", "icon.svg",
    "vendor/marked.umd.js", "vendor/purify.min.js", "vendor/highlight.min.js",
    "vendor/marked.LICENSE", "vendor/dompurify.LICENSE", "vendor/highlight.js.LICENSE", "vendor/README.txt",
)


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin"}


class Assets:
    """The static files of one app: (bytes, content type, ETag) by name, read on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[bytes, str, str]] | None = None

    def get(self, name: str) -> tuple[bytes, str, str] | None:
        with self._lock:
            if self._files is None:
                self._files = {n: self._read(n) for n in ASSETS}
            return self._files.get(name)

    @staticmethod
    def _read(name: str) -> tuple[bytes, str, str]:
        path = resources.files(__package__).joinpath("static", *name.split("/"))
        body = path.read_bytes()
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ".txt"
        kind = _TYPES.get(suffix, "text/plain; charset=utf-8")
        return body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
