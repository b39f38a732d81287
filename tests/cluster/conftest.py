"""A real local Ray instance running `llamarun cluster serve smollm2 --replicas 2` (once per package)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import Cluster, free_port, stop_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        pytest.fail("Ray Serve is missing: run `make test` (it installs .[cluster]) or "
                    "`.venv/bin/pip install -e '.[cluster]'`")
    port = free_port()
    log = tmp_path_factory.mktemp("cluster") / "cluster.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamarun", "cluster", "serve", "smollm2", "--replicas", "2", "--slots", "4",
             "--threads", "1", "--ctx", "1024", "--max-queued", "4", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    cluster = Cluster(proc, f"http://127.0.0.1:{port}", log)
    try:
        cluster.wait_replicas(2)
        yield cluster
    finally:
        stop_cluster(proc)
