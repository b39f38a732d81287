"""Start and stop `llamarun cluster serve` on a real local Ray instance."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

def free_port() -> int:
    # Ray Serve's proxy binds the port it is given (no port 0): take a free one and hand it over.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def ps(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/ps", timeout=30).json()["models"]

    def metric_by_replica(self, name: str, model: str | None = None) -> dict[str, float]:
        """Sum of ``name``'s samples per replica (only ``model``'s samples, e.g. ``smollm2``, if given)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and (model is None or s.labels.get("model", "").split(":")[0] == model):
                    out[s.labels["replica"]] = out.get(s.labels["replica"], 0.0) + s.value
        return out

    def wait_replicas(self, n: int, timeout: float = 240, exclude_pids: set[int] = frozenset(),
                      model: str = "smollm2") -> list[dict]:
        """The replicas of ``model`` once at least ``n`` (not in ``exclude_pids``) report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cluster exited: {self.log.read_text()[-3000:]}")
            try:
                ps = [p for p in self.ps() if p["pid"] not in exclude_pids and p["model"] == model]
                if len(ps) >= n:
                    return ps
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(1)
        raise AssertionError(f"{n} replicas not up in {timeout} s: {self.log.read_text()[-3000:]}")


def stop_cluster(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever Ray left in our session
    except ProcessLookupError:
        pass
    proc.wait(10)
