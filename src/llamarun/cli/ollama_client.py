"""A small client for the Ollama API of a running ``llamarun serve`` (``run --host``, ``ps``).

Speaks Ollama's documented wire format: ``POST /api/chat`` streaming NDJSON lines
(``message.content`` pieces, then a final line with ``done: true`` and counts/durations in
nanoseconds), ``POST /api/show``, ``GET /api/ps``; errors are ``{"error": "..."}`` with a
status code, or a final ``{"error"}`` line mid-stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import (InvalidParameterError, LlamarunError, ModelNotFoundError, OverloadedError,
                      RemoteServerError, RequestCancelledError)

__all__ = ["DEFAULT_PORT", "OllamaClient", "client_api_key", "default_host", "normalize_host"]

DEFAULT_PORT = 11434
_STATUS_ERRORS: dict[int, type[LlamarunError]] = {
    400: InvalidParameterError, 404: ModelNotFoundError, 499: RequestCancelledError, 503: OverloadedError,
}


def normalize_host(text: str) -> str:
    """``"host"``, ``"host:port"`` or a URL -> ``"http://host:port"`` (no trailing slash)."""
    raw = text.strip()
    if not raw:
        raise InvalidParameterError("--host is empty; e.g. --host http://127.0.0.1:11434", field="host")
    url = raw if "://" in raw else f"http://{raw}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError(f"--host must be an http(s) URL like http://127.0.0.1:11434, got {text!r}",
                                    field="host")
    try:
        port = parts.port or (DEFAULT_PORT if "://" not in raw else 443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidParameterError(f"--host has an invalid port: {text!r}", field="host") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"


def default_host() -> str:
    """Where ``llamarun serve`` listens by the current settings (a wildcard bind means this machine)."""
    from ..config import load_settings

    settings = load_settings()
    host = settings.host if settings.host not in ("0.0.0.0", "::", "[::]", "") else "127.0.0.1"
    return normalize_host(f"{host}:{settings.port}")


def client_api_key(api_key: str | None = None, api_key_file: str | os.PathLike[str] | None = None) -> str | None:
    """The key a client command sends: --api-key, --api-key-file, else the api_key settings (env, file)."""
    from ..config import load_settings

    return load_settings({"api_key": api_key, "api_key_file": api_key_file}).resolved_api_key()


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return str(data)[:500]


class OllamaClient:
    """Blocking calls to one server. Use as a context manager or call :meth:`close`."""

    def __init__(self, base_url: str, *, connect_timeout: float = 5.0, read_timeout: float | None = 30.0,
                 api_key: str | None = None) -> None:
        import httpx  # deferred: keeps `llamarun --help` fast

        self.base_url = normalize_host(base_url)
        self._httpx = httpx
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._keyed = bool(api_key)
        self._http = httpx.Client(base_url=self.base_url, trust_env=False, headers=headers,
                                  timeout=httpx.Timeout(read_timeout, connect=connect_timeout))

    # -- plumbing ----------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> RemoteServerError:
        if not isinstance(exc, (self._httpx.ConnectError, self._httpx.ConnectTimeout)):
            return RemoteServerError(f"the connection to {self.base_url} failed: {type(exc).__name__}: {exc}")
        return RemoteServerError(f"no llamarun server answers at {self.base_url} ({exc}); "
                                 "start one with `llamarun serve` or pass --host URL")

    def _raise_for(self, status: int, body: bytes, what: str) -> None:
        if status < 400:
            return
        if status == 401:
            raise RemoteServerError(
                f"the server at {self.base_url} refused the API key it was sent (HTTP {status}); check --api-key, "
                "--api-key-file or LLAMARUN_API_KEY" if self._keyed else
                f"the server at {self.base_url} requires an API key (HTTP {status}): pass --api-key-file FILE, "
                "--api-key KEY or set LLAMARUN_API_KEY")
        message = _error_text(body) or f"HTTP {status}"
        cls = _STATUS_ERRORS.get(status, RemoteServerError)
        raise cls(f"{what}: {message}" if cls is RemoteServerError else message)

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._raise_for(response.status_code, response.content, f"{method} {path} failed ({response.status_code})")
        try:
            return response.json()
        except ValueError:
            raise RemoteServerError(f"{method} {path}: the server at {self.base_url} did not answer JSON") from None

    # -- the API -----------------------------------------------------------------

    def chat_stream(self, model: str, messages: Sequence[Mapping[str, Any]],
                    options: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield each NDJSON object of a streamed ``/api/chat``; closing the iterator drops the connection."""
        body = {"model": model, "messages": list(messages), "stream": True, "options": dict(options)}
        try:
            with self._http.stream("POST", "/api/chat", json=body, timeout=self._httpx.Timeout(
                    None, connect=self._http.timeout.connect)) as response:
                if response.status_code >= 400:
                    self._raise_for(response.status_code, response.read(), f"chat failed ({response.status_code})")
                for line in response.iter_lines():
                    if line.strip():
                        yield self._line(line)
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    @staticmethod
    def _line(line: str) -> dict[str, Any]:
        try:
            data = json.loads(line)
        except ValueError:
            raise RemoteServerError(f"the server sent a line that is not JSON: {line[:200]!r}") from None
        if not isinstance(data, dict):
            raise RemoteServerError(f"the server sent an unexpected line: {line[:200]!r}")
        if "error" in data:
            raise RemoteServerError(f"the server failed mid-answer: {data['error']}")
        return data

    def load(self, model: str) -> None:
        """Ask the server to load ``model`` (a chat with no messages), so a bad name fails early."""
        self._json("POST", "/api/chat", {"model": model, "messages": [], "stream": False})

    def unload(self, model: str) -> None:
        """Unload ``model`` now, as ``ollama stop`` does: an empty generate with ``keep_alive`` 0."""
        self._json("POST", "/api/generate", {"model": model, "prompt": "", "keep_alive": 0, "stream": False})

    def show(self, model: str) -> dict[str, Any]:
        return self._json("POST", "/api/show", {"model": model})

    def ps(self) -> dict[str, Any]:
        return self._json("GET", "/api/ps")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
