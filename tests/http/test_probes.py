"""Probes: an open liveness answer, /health keeps the key and does not count itself, and a clean
SIGTERM of an idle server writes no WARNING."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serve_helpers import Server, start_server

pytestmark = pytest.mark.timeout(300)

KEY = "probe-key-0123456789"


def test_liveness_is_open_and_health_keeps_the_key(model_home: Path) -> None:
    server = start_server(model_home, "--parallel", "1", "--ctx", "256", "--api-key", KEY)
    try:
        r = httpx.get(f"{server.url}/health/live", timeout=30)
        assert r.status_code == 200 and r.text == "ok"
        assert httpx.head(f"{server.url}/health/live", timeout=30).status_code == 200
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 401
        r = httpx.get(f"{server.url}/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert r.status_code == 200 and r.json()["in_flight"] == 0  # not counting itself
    finally:
        assert server.stop() == 0


def test_sigterm_of_an_idle_server_writes_no_warning(model_home: Path) -> None:
    server: Server = start_server(model_home, "--parallel", "1", "--ctx", "256")
    assert server.health()["in_flight"] == 0
    assert server.stop() == 0
    errors = "".join(server.stderr)
    assert "WARNING" not in errors and "Traceback" not in errors, errors
