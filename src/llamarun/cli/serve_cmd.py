"""``llamarun serve``: the Ollama- and OpenAI-compatible HTTP server."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun serve                                  # http://127.0.0.1:11434, localhost only

  llamarun serve --port 0                         # any free port (printed on stdout)

  llamarun serve --host 0.0.0.0 --api-key-file ~/.llamarun-key   # on the network, with a key

  llamarun serve --parallel 8 --ctx 4096 --keep-alive 30m --preload smollm2
"""


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="TCP port (default 11434; 0: any free port)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Requests decoded together per model."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context of one request in tokens (0: auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (0: auto)."),
    cache_type_k: Optional[str] = typer.Option(None, "--cache-type-k", help="KV-cache type of keys (f16, q8_0...)."),
    cache_type_v: Optional[str] = typer.Option(None, "--cache-type-v", help="KV-cache type of values (f16, q8_0...)."),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", help="Idle time before unloading ('5m', -1)."),
    max_request_ctx: Optional[int] = typer.Option(
        None, "--max-request-ctx", help="Largest num_ctx a request may ask (0: max of --ctx and the model's own)."),
    allow_request_reload: Optional[bool] = typer.Option(
        None, "--allow-request-reload/--no-request-reload",
        help="Let a request's num_ctx/num_thread/num_batch/num_gpu reload a model (default: a 400)."),
    max_loaded_models: Optional[int] = typer.Option(None, "--max-loaded-models", help="Models loaded at once."),
    memory_budget: Optional[str] = typer.Option(None, "--memory-budget", help="Memory for all models ('8GiB')."),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", help="Waiting requests per model before 503."),
    request_timeout: Optional[str] = typer.Option(None, "--request-timeout", help="Default timeout ('10m'; 0 none)."),
    shutdown_timeout: Optional[str] = typer.Option(None, "--shutdown-timeout", help="Drain time on SIGTERM."),
    header_timeout: Optional[str] = typer.Option(None, "--header-timeout",
                                                 help="Time a client has to send its headers ('10s'; 0 none)."),
    body_timeout: Optional[str] = typer.Option(None, "--body-timeout",
                                               help="Time a client may send no body bytes ('30s'; 0 none)."),
    max_connections_per_client: Optional[int] = typer.Option(
        None, "--max-connections-per-client", help="Open connections from one address (default 256; 0 no bound)."),
    stream_interval: Optional[int] = typer.Option(None, "--stream-interval",
                                                  help="Tokens per streamed chunk after the first (default 1)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLAMARUN_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' (prefer --api-key-file)."),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", help="File whose first line is the key."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback bind without an API key."),
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin", help="Allowed browser origin (repeat)."),
    allowed_host: Optional[list[str]] = typer.Option(None, "--allowed-host", help="Extra Host header name allowed."),
    max_body: int = typer.Option(16 << 20, "--max-body-bytes", help="Largest request body."),
    max_upload: int = typer.Option(1 << 40, "--max-upload-bytes", help="Largest model file uploaded to /api/blobs."),
    web: Optional[bool] = typer.Option(None, "--web/--no-web",
                                       help="Serve the chat page at / and the dashboard at /dashboard (default on)."),
    preload: Optional[list[str]] = typer.Option(None, "--preload", help="Load this model at start (repeat)."),
    template: Optional[str] = typer.Option(None, "--template", help="Built-in chat template (chatml, llama3, "
                                           "gemma, mistral-v7 ...) for models without one (default: chosen from "
                                           "the vocabulary's special tokens)."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
) -> None:
    """Serve Ollama's and OpenAI's APIs on the models of the store."""
    from ..config import load_settings

    overrides: dict[str, Any] = {
        "host": host, "port": port, "parallel": parallel, "n_ctx": ctx, "threads": threads, "keep_alive": keep_alive,
        "max_loaded_models": max_loaded_models, "memory_budget": memory_budget, "max_queue": max_queue,
        "request_timeout": request_timeout, "shutdown_timeout": shutdown_timeout, "api_key": api_key,
        "stream_interval": stream_interval, "header_timeout": header_timeout, "body_timeout": body_timeout,
        "max_connections_per_client": max_connections_per_client, "max_request_ctx": max_request_ctx,
        "allow_request_reload": allow_request_reload, "web": web, "api_key_file": api_key_file, "log_level": log_level,
        "insecure": insecure or None, "cors_origins": tuple(cors_origin) if cors_origin else None,
        "cache_type_k": cache_type_k, "cache_type_v": cache_type_v}
    settings = load_settings(overrides, config_file=config_file)
    _setup_logging(settings.log_level)
    run_server(settings, allowed_hosts=tuple(allowed_host or ()), max_body_bytes=max_body,
               max_upload_bytes=max_upload, preload=tuple(preload or ()), fallback_template=template)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("llamarun")
    root.addHandler(handler)
    root.setLevel(level)


def run_server(settings: Any, *, allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 16 << 20,
               max_upload_bytes: int = 1 << 40, preload: tuple[str, ...] = (),
               fallback_template: str | None = None) -> None:
    from ..http import DrainingServer, HttpConfig, ServerState, create_app, store_resolver, uvicorn_config
    from ..runtime import ManagerConfig, ModelManager
    from ..store import ModelStore

    config = HttpConfig.from_settings(settings, allowed_hosts=allowed_hosts, max_body_bytes=max_body_bytes,
                                      max_upload_bytes=max_upload_bytes, fallback_template=fallback_template)
    sock = _bind(config.host, config.port)  # before loading anything: a taken port fails at once
    store = ModelStore(settings.home)
    manager = ModelManager(ManagerConfig.from_settings(settings, wait_timeout=settings.request_timeout or 600.0),
                           resolve=store_resolver(store))
    for name in preload:
        manager.acquire(name).release()
        typer.echo(f"loaded {name}", err=True)
    state = ServerState()
    app = create_app(config, manager=manager, store=store, state=state)

    def started(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"listening on http://{shown}:{port}")
        sys.stdout.flush()

    server = DrainingServer(uvicorn_config(app, config, log_level=settings.log_level), state,
                            shutdown_timeout=settings.shutdown_timeout, on_started=started,
                            on_drain=lambda: manager.close(0.0))
    try:
        server.run(sockets=[sock])
    finally:
        manager.close(0.0)
        sock.close()
    if not server.started:
        raise typer.Exit(code=3)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or an error that says what to do when the address is taken or wrong."""
    from ..errors import InvalidParameterError

    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = min(found, key=lambda info: info[0] != socket.AF_INET)  # IPv4 first
        return socket.create_server(address, family=family, backlog=2048)
    except OSError as exc:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise InvalidParameterError(f"port {port} on {host} is already in use (another `llamarun serve` or "
                                        f"`ollama serve`?); stop it, choose another with --port N, or use "
                                        "--port 0 for any free port", field="port") from None
        if exc.errno == errno.EACCES:
            raise InvalidParameterError(f"not allowed to listen on {shown} (ports below 1024 need privileges); "
                                        "choose another with --port N, or --port 0 for any free port",
                                        field="port") from None
        raise InvalidParameterError(f"cannot listen on {shown}: {exc.strerror or exc}; check --host and --port",
                                    field="host") from None


def register(app: typer.Typer) -> None:
    app.command(help="Serve Ollama's and OpenAI's APIs over HTTP.", epilog=EXAMPLES)(serve)
