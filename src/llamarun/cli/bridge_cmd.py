"""``llamarun bridge``: the Unix-socket line protocol (docs/bridge.md); ``--connect``: its client."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun bridge --model smollm2                 # socket path printed: listening on unix:PATH

  printf 'LOAD smollm2\\nINFER Why is the sky blue?\\n' | nc -N -U PATH

  llamarun bridge --connect                       # an interactive client on the default socket

  llamarun bridge --tcp 0.0.0.0:7070 --token-file ~/.bridge-token   # other hosts: AUTH <token> first
"""

TOKEN_ENV = "LLAMARUN_BRIDGE_TOKEN"


def _tcp_address(value: str) -> tuple[str, int]:
    from ..errors import InvalidParameterError

    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidParameterError(f"--tcp {value!r}: HOST:PORT, e.g. 127.0.0.1:7070 (port 0: any free port)",
                                    field="tcp")
    return host.strip("[]"), int(port)


def _token(token_file: Path | None, socket_path: Path) -> str:
    """The TCP token: from the file or the environment, else a new one written beside the socket."""
    if token_file is not None:
        token = token_file.expanduser().read_text().splitlines()[0].strip() if token_file.exists() else ""
        if not token:
            raise typer.BadParameter(f"{token_file} holds no token (its first line)", param_hint="--token-file")
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    token = secrets.token_urlsafe(32)
    path = socket_path.parent / "bridge.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    typer.echo(f"token in {path}", err=True)
    return token


def bridge(
    socket_path: Path | None = typer.Argument(None, metavar="SOCKET",
                                                 help="Socket path (default: $XDG_RUNTIME_DIR/llamarun/bridge.sock)."),
    connect: bool = typer.Option(False, "--connect", help="Connect to a running bridge as an interactive client."),
    tcp: str | None = typer.Option(None, "--tcp", help="Also listen on HOST:PORT (AUTH <token> required)."),
    token_file: Path | None = typer.Option(None, "--token-file", help=f"TCP token: first line (or ${TOKEN_ENV})."),
    model: str | None = typer.Option(None, "--model", help="Load this model at start; the model of new clients."),
    max_connections: int = typer.Option(64, "--max-connections", min=1, max=100_000, help="Clients at once."),
    max_line_bytes: int = typer.Option(1 << 20, "--max-line-bytes", min=64, max=1 << 30, help="Longest line."),
    parallel: int | None = typer.Option(None, "--parallel", help="Requests decoded together per model."),
    ctx: int | None = typer.Option(None, "--ctx", help="Context of one request in tokens (0: auto)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (0: auto)."),
    keep_alive: str | None = typer.Option(None, "--keep-alive", help="Idle time before unloading ('5m', -1)."),
    session_ram: str | None = typer.Option(None, "--session-ram", help="Saved KV states in RAM per model ('256MiB')."),
    session_disk: str | None = typer.Option(None, "--session-disk", help="Saved KV states on disk per model ('2GiB')."),
    shutdown_timeout: str | None = typer.Option(None, "--shutdown-timeout",
                                                help="Time running commands get to finish on SIGTERM ('30s')."),
    log_level: str | None = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    config_file: Path | None = typer.Option(None, "--config", help="TOML settings file."),
) -> None:
    """Serve the line protocol on a Unix socket (see docs/bridge.md)."""
    from ..bridge import default_socket_path, interactive, private_dir
    from ..config import load_settings

    overrides: dict[str, Any] = {"parallel": parallel, "n_ctx": ctx, "threads": threads, "keep_alive": keep_alive,
                                 "log_level": log_level, "session_ram": session_ram, "session_disk": session_disk,
                                 "shutdown_timeout": shutdown_timeout}
    settings = load_settings(overrides, config_file=config_file)
    default = default_socket_path(settings.home)
    path = (socket_path or default).expanduser().absolute()
    if connect:
        raise typer.Exit(code=interactive(path))
    _setup_logging(settings.log_level)
    if path.parent == default.parent or not path.parent.exists():
        private_dir(path.parent)
    token = _token(token_file, path) if tcp else None
    _run(settings, path, tcp=_tcp_address(tcp) if tcp else None, token=token, model=model,
         max_connections=max_connections, max_line_bytes=max_line_bytes)


def _run(settings: Any, path: Path, *, tcp: tuple[str, int] | None, token: str | None, model: str | None,
         max_connections: int, max_line_bytes: int) -> None:
    from ..bridge import Bridge, BridgeConfig, build_service
    from ..bridge.service import bridge_version

    service = build_service(settings)
    config = BridgeConfig(socket_path=path, tcp=tcp, token=token, max_connections=max_connections,
                          max_line_bytes=max_line_bytes, default_model=model, version=bridge_version(),
                          shutdown_timeout=settings.shutdown_timeout)
    bridge_ = Bridge(config, service)

    def ready(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    try:
        asyncio.run(bridge_.serve(on_ready=ready))
    finally:
        service.manager.close(0.0)
        service.close()


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("llamarun")
    root.addHandler(handler)
    root.setLevel(level)


def register(app: typer.Typer) -> None:
    app.command(help="Serve a line protocol on a Unix socket for any program (docs/bridge.md).",
                epilog=EXAMPLES)(bridge)
