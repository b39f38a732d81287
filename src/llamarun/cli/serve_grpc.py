"""``llamarun serve --grpc-port N``: the gRPC server beside HTTP (or alone with ``--no-http``) on the
same Service and model manager."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

__all__ = ["GrpcFlags", "grpc_flags", "run_grpc_only", "start_grpc"]

_SAME_SIGNAL_S = 0.25


@dataclass(frozen=True)
class GrpcFlags:
    """The gRPC flags of ``serve``."""

    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 16 << 20


def grpc_flags(port: int | None, tls_cert: Path | None, tls_key: Path | None, max_message_bytes: int, *,
               no_http: bool) -> GrpcFlags | None:
    """The gRPC flags given (None: no gRPC server), checked."""
    if port is None:
        if no_http:
            raise typer.BadParameter("--no-http needs --grpc-port", param_hint="--no-http")
        return None
    return GrpcFlags(port, tls_cert, tls_key, max_message_bytes)


def start_grpc(flags: GrpcFlags, settings: Any, service: Any, *, serving: bool) -> Any:
    """Start the gRPC thread and print where it listens; health says ``serving`` until told otherwise."""
    from ..grpc import GrpcConfig, GrpcThread

    config = GrpcConfig(host=settings.host, port=flags.port, api_key=settings.resolved_api_key(),
                        insecure=settings.insecure, tls_cert=flags.tls_cert, tls_key=flags.tls_key,
                        max_message_bytes=flags.max_message_bytes, shutdown_timeout=settings.shutdown_timeout)
    thread = GrpcThread(service, config)
    port = thread.start(serving=serving)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    typer.echo(f"grpc listening on {shown}:{port}")
    sys.stdout.flush()
    return thread


def run_grpc_only(thread: Any) -> None:
    """Serve until a signal: the first drains (in-flight calls finish), a second exits at once."""
    first: list[float] = []

    def on_signal(signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if first:
            if now - first[0] < _SAME_SIGNAL_S:  # one signal delivered twice (process group)
                return
            logging.shutdown()
            os._exit(128 + signum)
        first.append(now)
        thread.drain()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not thread.join(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
