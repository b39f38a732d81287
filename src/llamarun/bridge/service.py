"""The bridge's own serving stack over the store: a model manager and a :class:`Service` built
out of the settings as ``llamarun serve`` builds its own (the bridge is a process of its own)."""

from __future__ import annotations

from typing import Any

from ..serving import Service, ServingConfig

__all__ = ["bridge_version", "build_service"]


def bridge_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llamarun")
    except PackageNotFoundError:
        return "0+unknown"


def build_service(settings: Any, *, store: Any = None) -> Service:
    """A Service over the store at ``settings.home`` (names, and GGUF paths LOADed locally)."""
    from ..runtime import ManagerConfig, ModelManager
    from ..store import ModelStore
    from .server import bridge_resolver

    store = store if store is not None else ModelStore(settings.home)
    manager = ModelManager(ManagerConfig.from_settings(settings, wait_timeout=settings.request_timeout or 600.0),
                           resolve=bridge_resolver(store))
    return Service(manager, store, ServingConfig(request_timeout=settings.request_timeout,
                                                 stream_interval=settings.stream_interval, version=bridge_version()))
