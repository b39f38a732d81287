"""How the gRPC server listens and what it lets in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..serving.binding import is_loopback_host as is_loopback

__all__ = ["GrpcConfig", "is_loopback"]

@dataclass(frozen=True)
class GrpcConfig:
    """The gRPC server's settings.

    - bound to any address but a loopback one (the default), an ``api_key`` is required
      unless ``insecure``; with a key, every call needs ``authorization: Bearer <key>``
      metadata (the HTTP server's key); the health service answers without it (probes);
    - ``tls_cert``/``tls_key``: PEM files; without them the port is plaintext;
    - ``max_message_bytes``: largest message received or sent (grpcio's default: 4 MiB in);
    - ``shutdown_timeout``: seconds in-flight calls get on SIGTERM (health says NOT_SERVING meanwhile).
    """

    host: str = "127.0.0.1"
    port: int = 50051
    api_key: str | None = None
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 16 << 20
    shutdown_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.api_key and not self.insecure:
            raise ConfigError(f"gRPC on {self.host} (not a loopback address) needs an API key: pass --api-key or "
                              "--api-key-file, or --insecure to serve without one", key="api_key")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key must have at least 8 characters", key="api_key")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"grpc_port must be between 0 and 65535, got {self.port}", key="grpc_port")
        if not 1024 <= self.max_message_bytes <= 1 << 31:
            raise ConfigError(f"grpc_max_message_bytes must be between 1024 and {1 << 31}, "
                              f"got {self.max_message_bytes}", key="grpc_max_message_bytes")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --grpc-tls-cert and --grpc-tls-key", key="grpc_tls_cert")
        if not 0 <= self.shutdown_timeout <= 1e9:
            raise ConfigError(f"shutdown_timeout must be between 0 and 1e9 seconds, got {self.shutdown_timeout}",
                              key="shutdown_timeout")

    @property
    def needs_token(self) -> bool:
        """A key is asked whenever one is set (as the HTTP server does), on every bind."""
        return self.api_key is not None

    def tls_pair(self) -> tuple[bytes, bytes] | None:
        """(private key, certificate chain) read from the PEM files, or None for plaintext."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        try:
            return self.tls_key.read_bytes(), self.tls_cert.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}", key="grpc_tls_cert") from None
