"""One replica: one model loaded from the node's store (verified by digest), served by the same HTTP
app as ``llamarun serve``, called by the ingress through Ray Serve (:class:`ForwardedCall`).

Made a Ray Serve deployment by :func:`llamarun.cluster.app.build_application`;
the class itself does not import Ray, so it can be tested and reasoned about alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import DigestMismatchError, ModelNotFoundError
from .asgi import ForwardedCall, ResponseStart, call_app
from .spec import ModelSpec

__all__ = ["ModelReplica", "ensure_model", "normal_priority"]

logger = logging.getLogger(__name__)


def ensure_model(store: Any, spec: ModelSpec) -> Any:
    """The stored model ``spec`` names, pulled from its source when this node lacks it, and its blob
    hashed again before anything loads it: a replica never loads bytes whose SHA-256 differs."""
    from ..store.blobs import hash_file

    try:
        stored = store.get(spec.name)
    except ModelNotFoundError:
        if not spec.source:
            raise
        stored = store.pull(spec.source, name=spec.name, sha256=spec.digest.removeprefix("sha256:") or None)
    if spec.digest and stored.digest != spec.digest:
        raise DigestMismatchError(f"{spec.name} on this node is {stored.digest}, the cluster serves {spec.digest}: "
                                  f"pull it again (llamarun pull {spec.source or spec.name})")
    digest, _ = hash_file(stored.path)
    if f"sha256:{digest}" != stored.digest:
        raise DigestMismatchError(f"the blob of {spec.name} does not match its digest {stored.digest}: "
                                  "run `llamarun verify --delete` and pull it again")
    return stored


def normal_priority() -> bool:
    """Run this process's threads at niceness 0; True when the calling thread does (the threads
    started after it inherit its niceness).

    Ray starts its workers at niceness 15 (``worker_niceness``), so a replica's decode threads
    yield the CPU to every other process on the node, the ingress, the proxy and the clients
    included. Lowering it needs root or CAP_SYS_NICE; without them the replica says how to start
    Ray instead (``RAY_worker_niceness=0 ray start ...``). Linux keeps a niceness per thread, so each
    of the process's threads is set.
    """
    if not hasattr(os, "setpriority") or os.getpriority(os.PRIO_PROCESS, 0) <= 0:
        return True
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # no /proc: this thread alone
        threads = [0]
    try:
        for tid in threads:
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.setpriority(os.PRIO_PROCESS, tid, 0)
    except PermissionError:
        logger.warning("this replica runs at niceness %d (Ray's worker_niceness), so its decoding yields to "
                       "every other process on the node: start Ray with RAY_worker_niceness=0 "
                       "(RAY_worker_niceness=0 ray start ...)", os.getpriority(os.PRIO_PROCESS, 0))
        return False
    return os.getpriority(os.PRIO_PROCESS, 0) <= 0


class ModelReplica:
    """The model's runtime and HTTP app on one node."""

    def __init__(self, spec: ModelSpec, store_root: str | None = None) -> None:
        from ..http import HttpConfig, create_app, store_resolver
        from ..runtime import ManagerConfig, ModelManager
        from ..store import ModelStore

        self.spec = spec
        normal_priority()  # before the engine's threads start: they inherit this thread's niceness
        store = ModelStore(store_root)
        self.stored = ensure_model(store, spec)
        config = ManagerConfig(n_ctx=spec.n_ctx, n_slots=spec.n_slots, n_threads=spec.n_threads, max_loaded_models=1,
                               keep_alive=-1.0)
        self.manager = ModelManager(config, resolve=store_resolver(store))
        self.manager.acquire(spec.name).release()  # loaded before the replica takes requests
        self.app = create_app(HttpConfig(), manager=self.manager, store=store)
        self.started = time.time()
        self.pid = os.getpid()

    replica_id = ""  # set by the Ray Serve deployment: named in each answer's X-Llamarun-Replica

    async def handle(self, call: ForwardedCall) -> AsyncIterator[ResponseStart | bytes]:
        """Answer one forwarded request (a streaming call: the ingress reads it as it comes)."""
        async for item in call_app(self.app, call):
            if isinstance(item, ResponseStart) and self.replica_id:
                item = ResponseStart(item.status, (*item.headers, (b"x-llamarun-replica", self.replica_id.encode())))
            yield item

    def status(self) -> dict[str, Any]:
        """This replica's model, load and process (for ``/api/ps`` and the tests)."""
        snapshot = self._snapshot()
        return {"model": self.spec.name, "digest": self.stored.digest, "pid": self.pid, "node": _node_id(),
                "started": self.started, "slots": snapshot.n_slots if snapshot else 0,
                "running": snapshot.running if snapshot else 0,
                "waiting": snapshot.queue_depth if snapshot else 0,
                "kv_usage": snapshot.kv_usage if snapshot else 0.0,
                "size": self.stored.size}

    def metrics_text(self) -> str:
        """This replica's ``/metrics`` families (Prometheus text)."""
        from prometheus_client import generate_latest

        return generate_latest(self.app.state.metrics.registry).decode()

    def record_routing_stats(self) -> dict[str, Any]:
        """What Ray's request router sees of this replica (read by :class:`PrefixAffinityRouter`)."""
        snapshot = self._snapshot()
        return {"running": snapshot.running if snapshot else 0, "waiting": snapshot.queue_depth if snapshot else 0}

    def _snapshot(self) -> Any:
        runtimes = dict(self.manager.runtimes())
        runtime = runtimes.get(self.spec.name) or next(iter(runtimes.values()), None)
        return runtime.snapshot() if runtime is not None else None

    def __del__(self) -> None:
        manager = getattr(self, "manager", None)
        if manager is not None:
            manager.close(0.0)


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - outside Ray (tests of the class alone)
        return ""
