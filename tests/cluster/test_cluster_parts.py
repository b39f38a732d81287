"""The cluster's parts that run without Ray: a replica's digest check, the config file Ray Serve's
own schema reads, and the ingress's HTTP rules in front of a stand-in replica (no `cluster` marker:
these are quick and run with the rest)."""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from llamarun.cluster import ClusterSpec, ModelSpec
from llamarun.cluster.asgi import ForwardedCall, ResponseStart
from llamarun.cluster.ingress import Forwarder, build_ingress_app
from llamarun.cluster.replica import ModelReplica, ensure_model
from llamarun.errors import DigestMismatchError
from llamarun.store import ModelStore

ROOT = Path(__file__).resolve().parents[2]


# -- a replica loads only the blob its digest names -----------------------------------------------

def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size: only hashing the bytes again finds it
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_a_replica_refuses_a_blob_whose_bytes_do_not_match_its_digest(tmp_path: Path,
                                                                       tiny_model_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    stored = store.create("tiny", tiny_model_path)
    spec = ModelSpec("tiny", digest=stored.digest)
    assert ensure_model(store, spec).digest == stored.digest  # the intact blob is served
    _corrupt(stored.path)
    assert store.get("tiny").digest == stored.digest  # the store's record alone does not notice
    with pytest.raises(DigestMismatchError, match="does not match its digest"):
        ensure_model(store, spec)
    with pytest.raises(DigestMismatchError, match="does not match its digest"):
        ModelReplica(spec, str(tmp_path / "store"))  # the replica refuses before loading anything


def test_a_replica_refuses_a_model_stored_under_another_digest(tmp_path: Path, tiny_model_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    stored = store.create("tiny", tiny_model_path)
    other = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatchError, match="the cluster serves sha256:0000"):
        ensure_model(store, ModelSpec("tiny", digest=other))
    assert ensure_model(store, ModelSpec("tiny")).digest == stored.digest  # no pin: the stored blob, hashed


# -- `llamarun cluster config` writes what Ray Serve's schema accepts -----------------------------

def _config(*args: str) -> dict[str, Any]:
    import yaml

    out = subprocess.run([sys.executable, "-m", "llamarun", "cluster", "config", *args], cwd=ROOT, timeout=120,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)  # type: ignore[no-any-return]


def test_a_replica_started_niced_as_ray_does_decodes_at_normal_priority() -> None:
    """Ray starts workers at niceness 15; a replica lowers every thread of its process to 0 where
    it may (root or CAP_SYS_NICE), and otherwise says how to start Ray instead."""
    code = ("import logging, os, threading, time; logging.basicConfig()\n"
            "os.nice(15); t = threading.Thread(target=time.sleep, args=(2,)); t.start()\n"
            "from llamarun.cluster.replica import normal_priority\n"
            "done = normal_priority()\n"
            "print(done, sorted({os.getpriority(os.PRIO_PROCESS, int(x)) for x in os.listdir('/proc/self/task')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr
    done, _, niceness = out.stdout.strip().partition(" ")
    if done == "True":  # allowed to lower it (root with CAP_SYS_NICE): every thread, the earlier one included
        assert niceness == "[0]", out.stdout
    else:  # not allowed: nothing changed, and the log says how to start Ray
        assert niceness == "[15]" and "RAY_worker_niceness=0" in out.stderr, (out.stdout, out.stderr)
    if os.geteuid() == 0 and os.getpriority(os.PRIO_PROCESS, 0) == 0 and _may_lower_niceness():
        assert done == "True", out.stdout


def _may_lower_niceness() -> bool:
    """Whether this process holds CAP_SYS_NICE (root in a container may not)."""
    status = Path("/proc/self/status").read_text()
    effective = int(status.split("CapEff:")[1].split()[0], 16)
    return bool(effective & (1 << 23))  # CAP_SYS_NICE


# -- the prefix router backs off while every replica is full ---------------------------------------

class _FullReplica:
    """A replica whose queue is always full, counting the queue-length probes it answers."""

    def __init__(self, replica_id: Any) -> None:
        self.replica_id = replica_id
        self.max_ongoing_requests = 8
        self.probes = 0

    async def get_queue_len(self, *, deadline_s: float) -> int:
        self.probes += 1
        return self.max_ongoing_requests


def test_the_prefix_router_backs_off_while_every_replica_is_full() -> None:
    """Ray's routing loop retries at once unless the router asks it to back off; ours did not, and
    the ingress probed a full replica about 300 times a second (12,730 here), slowing its decode."""
    import asyncio
    from types import SimpleNamespace

    from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID, RequestMetadata
    from ray.serve.request_router import PendingRequest

    from llamarun.cluster.router import PrefixAffinityRouter

    async def probes_in_one_second() -> int:
        deployment = DeploymentID(name="model-x", app_name="llamarun")
        router = PrefixAffinityRouter(deployment, DeploymentHandleSource.UNKNOWN)
        router.initialize_state()
        replica = _FullReplica(ReplicaID(unique_id="r1", deployment_id=deployment))
        router.update_replicas([replica])
        request = PendingRequest(args=[SimpleNamespace(prompt="hello " * 100)], kwargs={},
                                 metadata=RequestMetadata(request_id="1", internal_request_id="1"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(router._choose_replica_for_request(request), 1.0)
        return replica.probes

    probes = asyncio.run(probes_in_one_second())
    assert 1 <= probes <= 20  # Ray's backoff: 0, 25 ms, 50 ms, ... up to 0.5 s between attempts


def test_cluster_config_is_a_serve_config_with_each_model_s_deployment() -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    data = _config("smollm2", "tiny", "--min-replicas", "2", "--max-replicas", "4", "--slots", "3",
                   "--max-queued", "5", "--cpus-per-replica", "0.5", "--port", "8123", "--store", "/srv/models")
    schema = ServeDeploySchema.model_validate(data)
    assert (schema.http_options.host, schema.http_options.port) == ("127.0.0.1", 8123)
    [app] = schema.applications
    assert (app.name, app.route_prefix, app.import_path) == ("llamarun", "/", "llamarun.cluster.app:app_builder")
    module, _, attr = app.import_path.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    deployments = {d.name: d for d in app.deployments}
    assert sorted(deployments) == ["model-smollm2", "model-tiny"]
    for d in deployments.values():
        # the slots and as many waiting at the replica, then a bounded queue in Ray
        assert (d.max_ongoing_requests, d.max_queued_requests) == (6, 5)
        assert (d.ray_actor_options.num_cpus, d.ray_actor_options.num_gpus) == (0.5, 0.0)
        autoscaling = AutoscalingConfig(**d.autoscaling_config)
        # --replicas (1) below the floor would be refused by Ray: it starts at the floor
        assert (autoscaling.min_replicas, autoscaling.initial_replicas, autoscaling.max_replicas) == (2, 2, 4)
        assert autoscaling.target_ongoing_requests == 2
    spec = ClusterSpec.from_mapping(app.args["spec"])  # what app_builder reads back
    assert [(m.name, m.min_replicas, m.max_replicas, m.n_slots) for m in spec.models] == [
        ("smollm2", 2, 4, 3), ("tiny", 2, 4, 3)]
    assert spec.store == "/srv/models" and spec.port == 8123


def test_cluster_config_with_fixed_replicas() -> None:
    from ray.serve.schema import ServeDeploySchema

    [app] = ServeDeploySchema.model_validate(_config("smollm2", "--replicas", "3", "--no-prefix-routing")).applications
    [d] = app.deployments
    assert (d.name, d.num_replicas, d.max_ongoing_requests) == ("model-smollm2", 3, 8)
    assert "autoscaling_config" not in d.model_fields_set
    assert app.args["spec"]["prefix_routing"] is False


# -- the ingress's rules, before any replica -------------------------------------------------------

class _Stream:
    def __init__(self, handle: _Handle, call: ForwardedCall) -> None:
        handle.calls.append(call)
        self._handle = handle
        self._refused = handle.refusals > 0  # as Ray's router does: the first message raises the refusal
        handle.refusals -= 1
        self._items: list[ResponseStart | bytes] = [
            ResponseStart(200, ((b"content-type", b"application/json"),)),
            json.dumps({"model": json.loads(call.body)["model"], "done": True}).encode()]

    def __aiter__(self) -> AsyncIterator[ResponseStart | bytes]:
        return self

    async def __anext__(self) -> ResponseStart | bytes:
        if self._refused:
            from ray.serve.exceptions import BackPressureError

            raise BackPressureError(num_queued_requests=4, max_queued_requests=4)
        if self._handle.failure is not None:
            raise self._handle.failure
        if not self._items:
            raise StopAsyncIteration
        return self._items.pop(0)

    def cancel(self) -> None:
        self._handle.cancelled += 1


class _Handle:
    """Stands in for a model deployment's Ray Serve handle: records the calls that reach it."""

    def __init__(self) -> None:
        self.calls: list[ForwardedCall] = []
        self.refusals = 0  # calls Ray's router refuses (back-pressure) before one goes through
        self.failure: Exception | None = None  # what every call's first message raises instead
        self.cancelled = 0
        self.handle = self

    def options(self, **_: Any) -> _Handle:
        return self

    def remote(self, call: ForwardedCall) -> _Stream:
        return _Stream(self, call)


class _Board:
    class reports:  # noqa: N801 - shaped like a Ray actor method
        @staticmethod
        async def remote() -> list[Any]:
            return []


@dataclasses.dataclass
class _Ingress:
    url: str
    handle: _Handle
    key: dict[str, str]  # the headers a client of this ingress sends its key in


@pytest.fixture(params=[None, "cluster-key-123"], ids=["loopback", "api-key"])
def ingress(request: pytest.FixtureRequest) -> Iterator[_Ingress]:
    """The ingress's ASGI app on a real socket (127.0.0.1, port 0), one stand-in replica behind it."""
    spec = ClusterSpec(models=(ModelSpec("smollm2"),), api_key=request.param)
    handle = _Handle()
    app = build_ingress_app(spec, Forwarder(spec, {"smollm2": handle}, _Board()))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started
        yield _Ingress(f"http://127.0.0.1:{port}", handle,
                       {"Authorization": f"Bearer {request.param}"} if request.param else {})
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


def test_a_request_within_the_rules_reaches_the_replica_without_its_credentials(ingress: _Ingress) -> None:
    r = httpx.post(f"{ingress.url}/api/generate", json={"model": "smollm2", "prompt": "hi"}, headers=ingress.key)
    assert r.status_code == 200 and r.json() == {"model": "smollm2", "done": True}
    [call] = ingress.handle.calls
    assert call.path == "/api/generate" and json.loads(call.body)["prompt"] == "hi"
    forwarded = {k.lower() for k, _ in call.headers}
    assert not forwarded & {b"authorization", b"host", b"content-length"}


def test_an_oversized_body_is_refused_with_413_before_any_replica(ingress: _Ingress) -> None:
    big = json.dumps({"model": "smollm2", "prompt": "x" * (17 << 20)}).encode()  # the limit is 16 MiB
    headers = {**ingress.key, "Content-Type": "application/json"}
    r = httpx.post(f"{ingress.url}/api/generate", content=big, headers=headers, timeout=60)
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    r = httpx.post(f"{ingress.url}/v1/chat/completions", content=chunks(), headers=headers, timeout=60)
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]["message"]
    assert ingress.handle.calls == []


def test_the_other_rules_hold_before_any_replica(ingress: _Ingress) -> None:
    url, key = ingress.url, ingress.key
    body = json.dumps({"model": "smollm2", "prompt": "hi"}).encode()
    gz = httpx.post(f"{url}/api/generate", content=gzip.compress(body), timeout=30,
                    headers={**key, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert gz.status_code == 415  # a compressed body could be a bomb
    form = httpx.post(f"{url}/api/generate", content=body, timeout=30,
                      headers={**key, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415  # a cross-site form post cannot reach the API
    rebound = httpx.post(f"{url}/api/generate", content=body, timeout=30,
                         headers={**key, "Content-Type": "application/json", "Host": "evil.example"})
    assert rebound.status_code in (400, 403)  # DNS rebinding
    cross = httpx.post(f"{url}/api/generate", content=body, timeout=30,
                       headers={**key, "Content-Type": "application/json", "Origin": "https://evil.example"})
    assert cross.status_code == 403
    if key:
        bare = httpx.post(f"{url}/api/generate", content=body, headers={"Content-Type": "application/json"})
        assert bare.status_code == 401
        wrong = httpx.post(f"{url}/api/generate", content=body,
                           headers={"Content-Type": "application/json", "Authorization": "Bearer wrong-key-000"})
        assert wrong.status_code == 401
    assert ingress.handle.calls == []


def test_a_refusal_while_requests_are_still_being_routed_is_retried(ingress: _Ingress) -> None:
    """Ray counts a request as queued until a replica is picked, so a burst of requests that all
    fit is sometimes refused for a moment: the ingress tries again rather than answer 503."""
    ingress.handle.refusals = 3
    r = httpx.post(f"{ingress.url}/api/generate", json={"model": "smollm2", "prompt": "hi"}, headers=ingress.key)
    assert r.status_code == 200 and r.json() == {"model": "smollm2", "done": True}
    assert len(ingress.handle.calls) == 4


def test_a_queue_that_stays_full_is_a_503_with_retry_after(ingress: _Ingress) -> None:
    ingress.handle.refusals = 1000
    started = time.monotonic()
    r = httpx.post(f"{ingress.url}/v1/chat/completions", headers=ingress.key,
                   json={"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]})
    elapsed = time.monotonic() - started
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "queue is full" in r.json()["error"]["message"]
    assert len(ingress.handle.calls) == 6 and ingress.handle.cancelled == 6  # each refused call let go
    assert 0.15 <= elapsed < 10  # five pauses of 10 to 160 ms, each jittered by half either way


def test_a_replica_s_failure_is_not_retried(ingress: _Ingress) -> None:
    from ray.exceptions import RayActorError

    ingress.handle.failure = RayActorError()
    r = httpx.post(f"{ingress.url}/api/generate", json={"model": "smollm2", "prompt": "hi"}, headers=ingress.key)
    assert r.status_code == 503 and "no replica could serve the request (RayActorError)" in r.json()["error"]
    assert len(ingress.handle.calls) == 1


def test_a_client_that_leaves_while_refused_is_not_retried_for(ingress: _Ingress) -> None:
    ingress.handle.refusals = 1000
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{ingress.url}/api/generate", json={"model": "smollm2", "prompt": "hi"}, headers=ingress.key,
                   timeout=0.04)
    time.sleep(1.0)  # longer than all the pauses together
    assert 1 <= len(ingress.handle.calls) < 6
