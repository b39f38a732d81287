"""A real local Ray instance running `llamarun cluster serve` (once per package): SmolLM2 on two replicas
and the tiny random-weight model on one, from a temporary store (SmolLM2 linked, not copied)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import Cluster, free_port, stop_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path,
            tiny_model_path: Path) -> Iterator[Cluster]:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        pytest.fail("Ray Serve is missing: run `make test` (it installs .[cluster]) or "
                    "`.venv/bin/pip install -e '.[cluster]'`")
    from llamarun.store import ModelStore

    port = free_port()
    work = tmp_path_factory.mktemp("cluster")
    store = ModelStore(work / "store")
    store.create("smollm2", smollm2_path, link=True)
    store.create("tiny", tiny_model_path)
    spec = {"port": port, "store": str(work / "store"), "models": [
        {"name": "smollm2", "replicas": 2, "n_slots": 4, "n_threads": 1, "n_ctx": 1024, "max_queued": 4},
        {"name": "tiny", "replicas": 1, "n_slots": 2, "n_threads": 1, "n_ctx": 256, "max_queued": 4}]}
    (work / "spec.json").write_text(json.dumps(spec))
    log = work / "cluster.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamarun", "cluster", "serve", "--config", str(work / "spec.json")],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    cluster = Cluster(proc, f"http://127.0.0.1:{port}", log)
    try:
        cluster.wait_replicas(2, model="smollm2")
        cluster.wait_replicas(1, model="tiny")
        yield cluster
    finally:
        stop_cluster(proc)
