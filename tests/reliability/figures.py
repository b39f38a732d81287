"""Measuring a server process (threads, open files, resident memory) and keeping the figures a run
found: ``make reliability`` sets ``LLAMARUN_RELIABILITY_FIGURES`` to a JSON file the tests add to."""

from __future__ import annotations

import http.client
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ProcStats", "normal_latency", "proc_stats", "record"]


@dataclass(frozen=True)
class ProcStats:
    threads: int
    fds: int
    rss_mib: float


def proc_stats(pid: int) -> ProcStats:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {k: v.split()[0] for k, _, v in (line.partition(":") for line in status) if v.split()}
    return ProcStats(int(fields["Threads"]), len(os.listdir(f"/proc/{pid}/fd")), int(fields["VmRSS"]) / 1024)


def normal_latency(url: str, *, generate: bool = True) -> float:
    """Seconds a fresh connection takes to get a normal answer (a 2-token generation, or the version).

    The standard library's client: httpx builds a new client and TLS context for each call, 0.1 s of
    this process's CPU that a loaded host stretches further, which is not the server's time."""
    parts = urlsplit(url)
    body = json.dumps({"model": "tiny", "prompt": "hi", "raw": True, "stream": False, "options": {"num_predict": 2}})
    start = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        if generate:
            conn.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
        else:
            conn.request("GET", "/api/version")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise AssertionError(f"{url}: a normal request got {response.status}")
    return time.perf_counter() - start


def record(section: str, **values: Any) -> None:
    """Add ``values`` under ``section`` to the figures file, when a run asked for one."""
    target = os.environ.get("LLAMARUN_RELIABILITY_FIGURES")
    if not target:
        return
    path = Path(target)
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[section] = {k: asdict(v) if isinstance(v, ProcStats) else v for k, v in values.items()}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True))
