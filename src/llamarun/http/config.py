"""Settings of the HTTP server itself (the models' settings live in the manager's config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..serving.binding import is_loopback_host

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["HttpConfig", "is_loopback_host"]

@dataclass(frozen=True)
class HttpConfig:
    """How the server listens and what it lets in.

    - bound to a loopback address, requests whose ``Host`` header is not a
      loopback name are refused (DNS rebinding); ``allowed_hosts`` adds names;
    - bound to any other address, an ``api_key`` is required unless ``insecure``;
    - ``cors_origins``: browser origins allowed to call the API (none by default);
    - ``max_body_bytes`` caps a request body (compressed bodies are refused),
      ``max_upload_bytes`` a model file uploaded to ``/api/blobs`` (the disk's free space
      is checked too), ``max_header_bytes`` the request line plus headers;
    - ``request_timeout`` (seconds, 0 = none) applies when a request sets none;
    - ``header_timeout``: seconds a client has to send its request line and headers,
      ``body_timeout``: seconds a client may send no body bytes while its body is read
      (0 = none for either), ``max_connections_per_client``: open connections from one
      address (0 = no bound);
    - ``stream_interval``: tokens per streamed chunk after the first (1: every token);
    - ``shutdown_timeout``: seconds in-flight requests get on SIGTERM/SIGINT;
    - ``web``: serve the chat page (``GET /`` asking for HTML) and ``/dashboard``.
    """

    host: str = "127.0.0.1"
    port: int = 11434
    api_key: str | None = None
    insecure: bool = False
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 16 << 20
    max_upload_bytes: int = 1 << 40
    max_header_bytes: int = 32 << 10
    request_timeout: float = 600.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections_per_client: int = 256
    shutdown_timeout: float = 30.0
    stream_interval: int = 1
    fallback_template: str | None = None  # built-in chat template for models without one (None: from the vocabulary)
    default_model: str = "smollm2"
    web: bool = True
    version: str = field(default_factory=lambda: _version())

    def __post_init__(self) -> None:
        if not self.loopback and not self.api_key and not self.insecure:
            raise ConfigError(
                f"serving on {self.host} (not a loopback address) needs an API key: pass --api-key or "
                "--api-key-file, or --insecure to serve without one", key="api_key")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key must have at least 8 characters", key="api_key")
        if "*" in self.cors_origins and self.api_key is None and not self.loopback:
            raise ConfigError("cors_origins '*' without an API key would let any web page use the server",
                              key="cors_origins")
        for name, lo, hi in (("port", 0, 65535), ("max_body_bytes", 1024, 1 << 31),
                             ("max_upload_bytes", 1024, 1 << 50), ("max_header_bytes", 1024, 1 << 24)):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}", key=name)
        if type(self.stream_interval) is not int or not 1 <= self.stream_interval <= 1024:
            raise ConfigError(f"stream_interval must be between 1 and 1024, got {self.stream_interval}",
                              key="stream_interval")
        if self.fallback_template is not None:
            from ..chat import builtin_names

            if self.fallback_template not in builtin_names():
                raise ConfigError(f"unknown built-in chat template {self.fallback_template!r}; known: "
                                  f"{', '.join(builtin_names())}", key="template")
        for name in ("request_timeout", "shutdown_timeout", "header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not 0 <= value <= 1e9:
                raise ConfigError(f"{name} must be between 0 and 1e9 seconds, got {value}", key=name)
        if type(self.max_connections_per_client) is not int or not 0 <= self.max_connections_per_client <= 1 << 20:
            raise ConfigError("max_connections_per_client must be between 0 and 1048576, "
                              f"got {self.max_connections_per_client}", key="max_connections_per_client")

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> HttpConfig:
        values: dict[str, Any] = {
            "host": settings.host, "port": settings.port, "api_key": settings.resolved_api_key(),
            "insecure": settings.insecure, "cors_origins": tuple(settings.cors_origins),
            "request_timeout": settings.request_timeout, "shutdown_timeout": settings.shutdown_timeout,
            "stream_interval": settings.stream_interval, "default_model": settings.default_model,
            "header_timeout": settings.header_timeout, "body_timeout": settings.body_timeout,
            "max_connections_per_client": settings.max_connections_per_client, "web": settings.web,
        }
        values.update({k: v for k, v in changes.items() if v is not None})
        return cls(**values)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llamarun")
    except PackageNotFoundError:
        return "0.0.0"
