"""What a cluster runs, as data: one :class:`ModelSpec` per model and the ingress's settings.

A spec comes from the command line (``llamarun cluster serve``) or a YAML/JSON
file, and turns into Ray Serve's own config file (:func:`serve_config`) for
``serve run`` / ``serve deploy``. Models are named by store name and pinned by
digest: a replica loads nothing whose SHA-256 differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["ClusterSpec", "ModelSpec", "models_from_names", "serve_config"]


@dataclass(frozen=True)
class ModelSpec:
    """One model's deployment: its replicas and what each one gets."""

    name: str  # the store name requests use in "model"
    digest: str = ""  # "sha256:<hex>": the blob every replica must load (resolved from the head's store)
    source: str = ""  # where a node without the blob pulls it (a catalog name, URL, hf://...)
    replicas: int = 1
    min_replicas: int = 0  # autoscaling when max_replicas > min_replicas
    max_replicas: int = 0
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    n_slots: int = 4  # requests each replica decodes together
    n_threads: int = 1
    n_ctx: int = 2048  # per request
    max_queued: int = 16  # requests Ray queues for the deployment beyond what its replicas take (max_ongoing)

    def __post_init__(self) -> None:
        for key in ("replicas", "n_slots", "n_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1", key=key)
        if self.max_replicas and self.max_replicas < max(self.min_replicas, 1):
            raise ConfigError("max_replicas must be at least min_replicas and 1", key="max_replicas")
        if self.max_queued < 0:
            raise ConfigError("max_queued must not be negative", key="max_queued")

    @property
    def max_ongoing(self) -> int:
        """Requests Ray gives one replica at once: its slots, and as many again waiting in the
        replica's own queue (so about the slot count, not Ray Serve LLM's 1e9). A request waiting in
        Ray's router is retried with a backoff of up to 0.5 s, so a slot that frees could idle that
        long; one already at the replica starts at the next step."""
        return 2 * self.n_slots

    @property
    def deployment_name(self) -> str:
        return "model-" + "".join(c if c.isalnum() else "-" for c in self.name)

    def autoscaling(self) -> dict[str, Any] | None:
        """Ray Serve's autoscaling config (on ongoing requests per replica), or None for a fixed count."""
        if not self.max_replicas or self.max_replicas == self.min_replicas == self.replicas:
            return None
        initial = min(max(self.replicas, self.min_replicas), self.max_replicas)  # Ray refuses one outside the range
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": initial, "target_ongoing_requests": max(1, self.n_slots - 1)}

    def deployment_options(self) -> dict[str, Any]:
        """This model's Ray Serve deployment options, as plain data (the code's options and the
        ``deployments`` entry of :func:`serve_config`; the request router is added where Ray is)."""
        options: dict[str, Any] = {
            "name": self.deployment_name, "max_ongoing_requests": self.max_ongoing,
            "max_queued_requests": self.max_queued,
            "ray_actor_options": {"num_cpus": self.cpus_per_replica, "num_gpus": self.gpus_per_replica},
            "health_check_period_s": 2.0, "graceful_shutdown_timeout_s": 5.0,
        }
        autoscaling = self.autoscaling()
        if autoscaling:
            options["autoscaling_config"] = autoscaling
        else:
            options["num_replicas"] = self.replicas
        return options


@dataclass(frozen=True)
class ClusterSpec:
    """The models, and where the ingress listens (its HTTP rules are ``llamarun serve``'s)."""

    models: tuple[ModelSpec, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    insecure: bool = False
    prefix_routing: bool = True
    store: str | None = None  # the store's root on every node (default: each node's default store)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a cluster needs at least one model", key="models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError("each model may appear once", key="models")

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClusterSpec:
        """A spec from a parsed YAML/JSON document (unknown keys refused, naming them)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown cluster setting(s): {', '.join(unknown)}", key=unknown[0])
        models = tuple(_model(m) for m in data.get("models") or ())
        return cls(**{**data, "models": models})

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _model(data: Any) -> ModelSpec:
    if isinstance(data, str):
        return ModelSpec(name=data)
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown model setting(s): {', '.join(unknown)}", key=unknown[0])
    return ModelSpec(**data)


def serve_config(spec: ClusterSpec, *, import_path: str = "llamarun.cluster.app:app_builder") -> dict[str, Any]:
    """Ray Serve's config file for this spec (``serve run config.yaml`` / ``serve deploy``): the spec
    as the builder's ``args``, and each model's deployment (replicas or autoscaling, slots as
    ``max_ongoing_requests``, queue, resources) under ``deployments`` where Ray's tools read them."""
    return {
        "http_options": {"host": spec.host, "port": spec.port},
        "applications": [{"name": "llamarun", "route_prefix": "/", "import_path": import_path,
                          "args": {"spec": spec.to_mapping()},
                          "deployments": [m.deployment_options() for m in spec.models]}],
    }


def models_from_names(names: Sequence[str], **settings: Any) -> tuple[ModelSpec, ...]:
    """One spec per model name, all with the same ``settings``."""
    return tuple(ModelSpec(name=n, **settings) for n in names)

