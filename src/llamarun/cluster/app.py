"""The Ray Serve application: one deployment per model (its replicas) behind one ingress.

    app = build_application(ClusterSpec(models=(ModelSpec("smollm2", replicas=2),)))
    serve.run(app, name="llamarun", route_prefix="/")

or, from a config file, ``serve run cluster.yaml`` with ``import_path:
llamarun.cluster.app:app_builder`` (``llamarun cluster config`` writes one).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from .board import board_handle, start_reporting
from .ingress import Forwarder, build_ingress_app
from .replica import ModelReplica
from .spec import ClusterSpec, ModelSpec

__all__ = ["ClusterIngress", "ClusterReplica", "app_builder", "build_application", "resolve_models"]


class ClusterReplica(ModelReplica):
    """A :class:`ModelReplica` that reports its status and metrics to the board."""

    def __init__(self, spec: ModelSpec, store_root: str | None = None) -> None:
        super().__init__(spec, store_root)
        from ray import serve

        context = serve.get_replica_context()
        self._stop = threading.Event()
        self.replica_id = str(getattr(context, "replica_tag", "") or context.replica_id.unique_id)
        start_reporting(self.replica_id, self.status, self.metrics_text, self._stop)

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        super().__del__()


class ClusterIngress:
    """The ingress deployment: builds its ASGI app once the handles are known."""

    def __init__(self, spec: ClusterSpec, handles: Mapping[str, Any]) -> None:
        self.spec = spec
        self.forwarder = Forwarder(spec, handles, board_handle())

    def __serve_build_asgi_app__(self) -> Any:
        return build_ingress_app(self.spec, self.forwarder)


def resolve_models(spec: ClusterSpec) -> ClusterSpec:
    """The spec with each model's digest and source taken from this node's store (pulled first when
    it is a catalog name the store lacks), so every replica loads the same verified blob."""
    from ..errors import ModelNotFoundError
    from ..store import ModelStore

    store = ModelStore(spec.store)
    models = []
    for m in spec.models:
        try:
            stored = store.get(m.name)
        except ModelNotFoundError:
            stored = store.pull(m.source or m.name, name=None if m.source else None)
        models.append(dataclasses.replace(m, digest=m.digest or stored.digest, source=m.source or stored.source))
    return dataclasses.replace(spec, models=tuple(models))


def _model_options(m: ModelSpec, prefix_routing: bool) -> dict[str, Any]:
    options = m.deployment_options()
    if prefix_routing:
        from ray.serve.config import RequestRouterConfig

        from .router import PrefixAffinityRouter

        options["request_router_config"] = RequestRouterConfig(request_router_class=PrefixAffinityRouter,
                                                               request_routing_stats_period_s=1.0)
    return options


def build_application(spec: ClusterSpec) -> Any:
    """The Serve application of ``spec`` (models resolved against this node's store)."""
    from ray import serve

    spec = resolve_models(spec)
    replicas = {m.name: serve.deployment(ClusterReplica, **_model_options(m, spec.prefix_routing)).bind(m, spec.store)
                for m in spec.models}
    ingress = serve.deployment(serve.ingress()(ClusterIngress), name="ingress", num_replicas=1,
                               max_ongoing_requests=4096, ray_actor_options={"num_cpus": 0})
    return ingress.bind(spec, replicas)


def app_builder(args: Mapping[str, Any]) -> Any:
    """For ``serve run`` / ``serve deploy`` config files: ``args: {spec: {...}}``."""
    return build_application(ClusterSpec.from_mapping(args["spec"]))
