"""Small responses are not held back by the client's delayed ACK (TCP_NODELAY on every accepted
connection): without it, a response written as head then body waited about 40 ms each time."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
from serve_helpers import start_server


def test_small_responses_are_not_delayed_by_nagle(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.get("/health/live")
            times = []
            for _ in range(20):
                started = time.perf_counter()
                assert client.get("/health/live").status_code == 200
                times.append(time.perf_counter() - started)
    finally:
        server.stop()
    assert statistics.median(times) < 0.02, times  # 44 ms each before (Nagle waiting for the ACK)
