"""``llamarun cluster serve|config``: the same APIs as ``llamarun serve``, on Ray Serve replicas."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun cluster serve smollm2 --replicas 2                 # one machine: a local Ray instance

  ray start --head                                            # several machines: the head ...
  ray start --address=HEAD:6379                               # ... each other node
  llamarun cluster serve smollm2 --replicas 4 --address auto  # then, on the head

  llamarun cluster config smollm2 --replicas 2 > cluster.yaml && serve run cluster.yaml
"""


def _spec(models: list[str], config: Optional[Path], **settings: Any) -> Any:
    from ..cluster import ClusterSpec, models_from_names
    from ..errors import ConfigError

    ingress = {k: settings.pop(k) for k in ("host", "port", "api_key", "insecure", "prefix_routing", "store")}
    if config is not None:
        if models:
            raise ConfigError("give models on the command line or in --config, not both", key="models")
        text = config.read_text()
        data = json.loads(text) if config.suffix == ".json" else _yaml(text)
        return ClusterSpec.from_mapping(data)
    if not models:
        raise ConfigError("name at least one model (llamarun cluster serve smollm2)", key="models")
    return ClusterSpec(models=models_from_names(models, **settings), **ingress)


def _yaml(text: str) -> Any:
    import yaml  # comes with ray[serve]

    data = yaml.safe_load(text)
    apps = data.get("applications") if isinstance(data, dict) else None
    return apps[0]["args"]["spec"] if apps else data  # a `llamarun cluster config` file or a bare spec


def _options(replicas: int, min_replicas: int, max_replicas: int, cpus: float, gpus: float, slots: int,
             threads: int, ctx: int, max_queued: int) -> dict[str, Any]:
    return {"replicas": replicas, "min_replicas": min_replicas, "max_replicas": max_replicas,
            "cpus_per_replica": cpus, "gpus_per_replica": gpus, "n_slots": slots, "n_threads": threads,
            "n_ctx": ctx, "max_queued": max_queued}


def serve(
    models: list[str] = typer.Argument(None, help="Store names of the models to serve."),
    replicas: int = typer.Option(1, "--replicas", help="Replicas per model."),
    min_replicas: int = typer.Option(0, "--min-replicas", help="Autoscaling floor (with --max-replicas)."),
    max_replicas: int = typer.Option(0, "--max-replicas", help="Autoscaling ceiling (0: fixed --replicas)."),
    cpus: float = typer.Option(1.0, "--cpus-per-replica", help="Ray CPUs each replica reserves."),
    gpus: float = typer.Option(0.0, "--gpus-per-replica", help="Ray GPUs each replica reserves."),
    slots: int = typer.Option(4, "--slots", help="Requests each replica decodes together."),
    threads: int = typer.Option(1, "--threads", help="CPU threads of each replica."),
    ctx: int = typer.Option(2048, "--ctx", help="Context of one request in tokens."),
    max_queued: int = typer.Option(16, "--max-queued", help="Requests queued per model beyond the slots (then 503)."),
    address: str = typer.Option("local", "--address", help="'local' (a new Ray instance), 'auto', or ray://HOST:PORT."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the HTTP ingress binds."),
    port: int = typer.Option(8000, "--port", help="Port of the HTTP ingress."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="LLAMARUN_API_KEY", help="Key clients must send."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback bind without a key."),
    no_prefix_routing: bool = typer.Option(False, "--no-prefix-routing", help="Route by load only."),
    config: Optional[Path] = typer.Option(None, "--config", help="A YAML/JSON spec (llamarun cluster config)."),
) -> None:
    spec = _spec(models or [], config, host=host, port=port, api_key=api_key, insecure=insecure,
                 prefix_routing=not no_prefix_routing, store=None,
                 **_options(replicas, min_replicas, max_replicas, cpus, gpus, slots, threads, ctx, max_queued))
    _run(spec, address)


def _run(spec: Any, address: str) -> None:
    import ray
    from ray import serve as ray_serve

    from ..cluster import build_application
    from ..http.config import HttpConfig

    HttpConfig(host=spec.host, port=spec.port, api_key=spec.api_key, insecure=spec.insecure)  # refuses early
    if address == "local":
        need = sum(m.cpus_per_replica * max(m.replicas, m.max_replicas) for m in spec.models)
        # Ray starts workers at niceness 15; a replica's decoding must not yield to the ingress and clients
        ray.init(namespace="llamarun", num_cpus=max(2, int(need + 1.999)), include_dashboard=False,
                 _system_config={"worker_niceness": 0})
    else:
        ray.init(address=address, namespace="llamarun")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        ray_serve.start(http_options={"host": spec.host, "port": spec.port})
        ray_serve.run(build_application(spec), name="llamarun", route_prefix="/", blocking=False)
        typer.echo(f"llamarun cluster serving on http://{spec.host}:{spec.port} "
                   f"({', '.join(f'{m.name} x{m.replicas}' for m in spec.models)})", err=True)
        typer.echo(f"http://{spec.host}:{spec.port}")
        stop.wait()
    finally:
        _shutdown()


def _shutdown(timeout: float = 20.0) -> None:
    """Stop the application, then Ray: a Ray already hurt by the signal (a Ctrl-C reaches the whole
    process group) must not leave Serve's shutdown waiting forever."""
    import ray
    from ray import serve as ray_serve

    worker = threading.Thread(target=ray_serve.shutdown, name="serve-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    ray.shutdown()


def config_cmd(
    models: list[str] = typer.Argument(..., help="Store names of the models to serve."),
    replicas: int = typer.Option(1, "--replicas", help="Replicas per model."),
    min_replicas: int = typer.Option(0, "--min-replicas", help="Autoscaling floor (with --max-replicas)."),
    max_replicas: int = typer.Option(0, "--max-replicas", help="Autoscaling ceiling (0: fixed --replicas)."),
    cpus: float = typer.Option(1.0, "--cpus-per-replica", help="Ray CPUs each replica reserves."),
    gpus: float = typer.Option(0.0, "--gpus-per-replica", help="Ray GPUs each replica reserves."),
    slots: int = typer.Option(4, "--slots"), threads: int = typer.Option(1, "--threads"),
    ctx: int = typer.Option(2048, "--ctx"), max_queued: int = typer.Option(16, "--max-queued"),
    host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
    no_prefix_routing: bool = typer.Option(False, "--no-prefix-routing", help="Route by load only."),
    store: Optional[str] = typer.Option(None, "--store", help="The store's root on every node (default: each node's)."),
) -> None:
    """Print a Ray Serve config file (YAML) for these models. It holds no API key: a host other than
    loopback needs ``api_key`` added under ``spec`` (the ingress refuses to start without one)."""
    import yaml

    from ..cluster import serve_config

    spec = _spec(models, None, host=host, port=port, api_key=None, insecure=False,
                 prefix_routing=not no_prefix_routing, store=store,
                 **_options(replicas, min_replicas, max_replicas, cpus, gpus, slots, threads, ctx, max_queued))
    typer.echo(yaml.safe_dump(serve_config(spec), sort_keys=False))


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(help="Serve models on Ray Serve replicas (pip install 'llamarun[cluster]').",
                          no_args_is_help=True)
    cluster.command("serve", help="Serve models on Ray Serve replicas behind one HTTP ingress.",
                    epilog=EXAMPLES)(serve)
    cluster.command("config", help="Print a Ray Serve config file (serve run / serve deploy).")(config_cmd)
    app.add_typer(cluster, name="cluster")
