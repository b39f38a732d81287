"""``llamarun serve``: the Ollama- and OpenAI-compatible HTTP server (and gRPC with ``--grpc-port``)."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .serve_grpc import grpc_flags

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun serve                                  # http://127.0.0.1:11434, localhost only

  llamarun serve --port 0                         # any free port (printed on stdout)

  llamarun serve --host 0.0.0.0 --api-key-file ~/.llamarun-key   # on the network, with a key

  llamarun serve --parallel 8 --ctx 4096 --keep-alive 30m --preload smollm2

  llamarun serve --grpc-port 50051                # gRPC (llamarun.v1) beside HTTP, same models

  llamarun serve --grpc-port 50051 --no-http      # gRPC alone
"""


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="TCP port (default 11434; 0: any free port)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Requests decoded together per model."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context of one request in tokens (0: auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (0: auto)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Engine: llama.cpp (default) or numpy."),
    cache_type_k: Optional[str] = typer.Option(None, "--cache-type-k", help="KV-cache type of keys (f16, q8_0...)."),
    cache_type_v: Optional[str] = typer.Option(None, "--cache-type-v", help="KV-cache type of values (f16, q8_0...)."),
    speculative: Optional[str] = typer.Option(None, "--speculative", help="Speculative decoding: off, ngram, draft."),
    draft_max: Optional[int] = typer.Option(None, "--draft-max", help="Most drafted tokens per request and step."),
    draft_model: Optional[str] = typer.Option(None, "--draft-model", help="GGUF of a small same-vocabulary model."),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", help="Idle time before unloading ('5m', -1)."),
    max_request_ctx: Optional[int] = typer.Option(
        None, "--max-request-ctx", help="Largest num_ctx a request may ask (0: max of --ctx and the model's own)."),
    allow_request_reload: Optional[bool] = typer.Option(
        None, "--allow-request-reload/--no-request-reload",
        help="Let a request's num_ctx/num_thread/num_batch/num_gpu reload a model (default: a 400)."),
    max_loaded_models: Optional[int] = typer.Option(None, "--max-loaded-models", help="Models loaded at once."),
    memory_budget: Optional[str] = typer.Option(None, "--memory-budget", help="Memory for all models ('8GiB')."),
    session_ram: Optional[str] = typer.Option(None, "--session-ram", help="Saved KV states in RAM per model ('256MiB')."),
    session_disk: Optional[str] = typer.Option(None, "--session-disk", help="The same on disk per model ('2GiB')."),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", help="Waiting requests per model before 503."),
    request_timeout: Optional[str] = typer.Option(None, "--request-timeout", help="Default timeout ('10m'; 0 none)."),
    shutdown_timeout: Optional[str] = typer.Option(None, "--shutdown-timeout", help="Drain time on SIGTERM."),
    header_timeout: Optional[str] = typer.Option(None, "--header-timeout", help="Time to send the headers ('10s')."),
    body_timeout: Optional[str] = typer.Option(None, "--body-timeout", help="Time a body may stall ('30s'; 0 none)."),
    max_connections_per_client: Optional[int] = typer.Option(
        None, "--max-connections-per-client", help="Open connections from one address (default 256; 0 no bound)."),
    stream_interval: Optional[int] = typer.Option(None, "--stream-interval", help="Tokens per streamed chunk (1)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLAMARUN_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' (prefer --api-key-file)."),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", help="File whose first line is the key."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback bind without an API key."),
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin", help="Allowed browser origin (repeat)."),
    allowed_host: Optional[list[str]] = typer.Option(None, "--allowed-host", help="Extra Host header name allowed."),
    max_body: int = typer.Option(16 << 20, "--max-body-bytes", help="Largest request body."),
    max_upload: int = typer.Option(1 << 40, "--max-upload-bytes", help="Largest model file uploaded to /api/blobs."),
    web: Optional[bool] = typer.Option(None, "--web/--no-web", help="The chat page at / and /dashboard (on)."),
    log_prompts: Optional[bool] = typer.Option(None, "--log-prompts/--no-log-prompts", help="Prompts in /dashboard."),
    preload: Optional[list[str]] = typer.Option(None, "--preload", help="Load this model at start (repeat)."),
    template: Optional[str] = typer.Option(None, "--template", help="Built-in chat template (chatml, llama3, gemma, "
                                           "...) for models without one (default: from their special tokens)."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
    grpc_port: Optional[int] = typer.Option(None, "--grpc-port", help="Serve gRPC too, on this port (0: any)."),
    no_http: bool = typer.Option(False, "--no-http", help="Serve gRPC only (needs --grpc-port)."),
    grpc_tls_cert: Optional[Path] = typer.Option(None, "--grpc-tls-cert", help="PEM certificate chain for gRPC TLS."),
    grpc_tls_key: Optional[Path] = typer.Option(None, "--grpc-tls-key", help="PEM private key for gRPC TLS."),
    grpc_max_message: int = typer.Option(16 << 20, "--grpc-max-message-bytes", help="Largest gRPC message."),
) -> None:
    """Serve Ollama's and OpenAI's APIs on the models of the store."""
    from ..config import load_settings

    overrides = _overrides(dict(locals()))
    settings = load_settings(overrides, config_file=config_file)
    _setup_logging(settings.log_level)
    run_server(settings, allowed_hosts=tuple(allowed_host or ()), max_body_bytes=max_body,
               max_upload_bytes=max_upload, preload=tuple(preload or ()), fallback_template=template, http=not no_http,
               grpc=grpc_flags(grpc_port, grpc_tls_cert, grpc_tls_key, grpc_max_message, no_http=no_http))


# `serve`'s options that are settings, by their setting names (the rest are passed on as they are)
_SETTING_OPTIONS = ("host", "port", "parallel", "threads", "backend", "keep_alive", "max_loaded_models",
                    "memory_budget", "session_ram", "session_disk", "max_queue", "request_timeout", "shutdown_timeout", "api_key", "stream_interval",
                    "header_timeout", "body_timeout", "max_connections_per_client", "max_request_ctx",
                    "allow_request_reload", "web", "log_prompts", "api_key_file", "log_level", "cache_type_k",
                    "cache_type_v", "speculative")


def _overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (None: not given)."""
    values = {name: options[name] for name in _SETTING_OPTIONS}
    values.update(n_ctx=options["ctx"], insecure=options["insecure"] or None, speculative_n_max=options["draft_max"],
                  speculative_draft_model=options["draft_model"],
                  cors_origins=tuple(options["cors_origin"]) if options["cors_origin"] else None)
    return values


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("llamarun")
    root.addHandler(handler)
    root.setLevel(level)


def run_server(settings: Any, *, allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 16 << 20,
               max_upload_bytes: int = 1 << 40, preload: tuple[str, ...] = (),
               fallback_template: str | None = None, grpc: Any = None, http: bool = True) -> None:
    from ..http import HttpConfig, store_resolver
    from ..runtime import ManagerConfig, ModelManager
    from ..serving import Service, ServingConfig
    from ..store import ModelStore

    config = HttpConfig.from_settings(settings, allowed_hosts=allowed_hosts, max_body_bytes=max_body_bytes,
                                      max_upload_bytes=max_upload_bytes,
                                      fallback_template=fallback_template) if http else None
    sock = _bind(config.host, config.port) if config else None  # before loading anything: a taken port fails at once
    store = ModelStore(settings.home)
    manager = ModelManager(ManagerConfig.from_settings(settings, wait_timeout=settings.request_timeout or 600.0),
                           resolve=store_resolver(store))
    service = Service(manager, store, ServingConfig(  # one for every frontend
        request_timeout=settings.request_timeout, stream_interval=settings.stream_interval,
        version=config.version if config else "", fallback_template=fallback_template))
    grpc_thread = None
    try:
        if grpc is not None:
            from .serve_grpc import start_grpc

            grpc_thread = start_grpc(grpc, settings, service, serving=not preload)  # NOT_SERVING while preloading
        for name in preload:
            manager.acquire(name).release()
            typer.echo(f"loaded {name}", err=True)
        if grpc_thread is not None:
            grpc_thread.set_serving(True)
        if config is None:
            from .serve_grpc import run_grpc_only

            run_grpc_only(grpc_thread)
            return
        _run_http(config, settings, service, sock, grpc_thread)
    finally:
        if grpc_thread is not None:
            grpc_thread.drain()
            grpc_thread.join(settings.shutdown_timeout + 10)
        manager.close(0.0)
        service.close()
        if sock is not None:
            sock.close()


def _run_http(config: Any, settings: Any, service: Any, sock: socket.socket, grpc_thread: Any) -> None:
    from ..http import DrainingServer, ServerState, create_app, uvicorn_config

    state = ServerState()
    app = create_app(config, state=state, service=service)

    def started(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"listening on http://{shown}:{port}")
        sys.stdout.flush()

    server = DrainingServer(uvicorn_config(app, config, log_level=settings.log_level), state,
                            shutdown_timeout=settings.shutdown_timeout, on_started=started,
                            on_drain=lambda: service.manager.close(0.0),
                            on_drain_start=grpc_thread.drain if grpc_thread is not None else None)
    server.run(sockets=[sock])
    if grpc_thread is not None:  # HTTP has drained: the gRPC calls get the rest of their time
        grpc_thread.drain()
        grpc_thread.join(settings.shutdown_timeout + 10)
    if not server.started:
        raise typer.Exit(code=3)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or an error that says what to do when the address is taken or wrong."""
    from ..errors import InvalidParameterError

    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = min(found, key=lambda info: info[0] != socket.AF_INET)  # IPv4 first
        listener = socket.create_server(address, family=family, backlog=2048)
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
    # accepted connections inherit it: asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP,
    # and without it a small response written in two parts waits ~40 ms for the client's delayed ACK
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def register(app: typer.Typer) -> None:
    app.command(help="Serve Ollama's and OpenAI's APIs over HTTP.", epilog=EXAMPLES)(serve)
