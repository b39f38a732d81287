"""``/metrics`` labels come from a fixed set: made-up methods and paths cannot grow the output."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve_helpers import Server

pytestmark = pytest.mark.timeout(300)

STANDARD = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}


def _raw_request(port: int, method: str, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def _http_samples(text: str) -> list[dict[str, str]]:
    return [s.labels for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("llamarun_http_")]


def test_made_up_methods_and_paths_do_not_grow_the_metrics(smol_server: Server) -> None:
    for i in range(5):  # every route and label combination the loop below can reach, seen once
        _raw_request(smol_server.port, f"WARMUP{i}", f"/warmup/{i}")
        _raw_request(smol_server.port, f"WARMUP{i}", "/api/tags")
    httpx.get(f"{smol_server.url}/metrics")  # so that the scrape's own series are in the baseline
    baseline = httpx.get(f"{smol_server.url}/metrics").text
    for i in range(300):
        reply = _raw_request(smol_server.port, f"MADEUP{i}X", f"/nowhere/{i}?q={i}" if i % 2 else "/api/tags")
        assert reply.startswith(b"HTTP/1.1 4"), reply[:100]
    after = httpx.get(f"{smol_server.url}/metrics").text
    samples = _http_samples(after)
    methods = {labels["method"] for labels in samples if "method" in labels}
    routes = {labels["route"] for labels in samples if "route" in labels}
    assert "other" in methods and methods <= STANDARD, methods
    assert "unmatched" in routes and "/api/tags" in routes
    assert not any("nowhere" in r or "MADEUP" in r for r in routes), routes
    assert "MADEUP" not in after and "nowhere" not in after
    # the same series, only their counts changed: a few bytes per number, not a series per request
    assert len(_http_samples(after)) <= len(_http_samples(baseline)) 
    assert len(after) < len(baseline) + 2000, (len(baseline), len(after))
