"""SIGTERM drains: new requests get 503, in-flight ones finish (or are cut at the timeout), exit 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from serve_helpers import Server, start_server
from waiting import wait_until

pytestmark = pytest.mark.timeout(300)


class Streamer(threading.Thread):
    """Streams one Ollama chat from a thread, recording every line."""

    def __init__(self, server: Server, num_predict: int) -> None:
        super().__init__(daemon=True)
        self.server, self.num_predict = server, num_predict
        self.lines: list[dict] = []
        self.error: BaseException | None = None
        self.started_streaming = threading.Event()

    def run(self) -> None:
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "Tell me a long story."}],
                "options": {"num_predict": self.num_predict, "ignore_eos": True}}
        try:
            with httpx.stream("POST", f"{self.server.url}/api/chat", json=body, timeout=120) as r:
                for line in r.iter_lines():
                    if line:
                        self.lines.append(json.loads(line))
                        self.started_streaming.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.started_streaming.set()


def _streams(server: Server, n: int, num_predict: int) -> list[Streamer]:
    streams = [Streamer(server, num_predict) for _ in range(n)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started_streaming.wait(60)
    return streams


def test_sigterm_drains_in_flight_requests(model_home: Path) -> None:
    server = start_server(model_home, "--parallel", "2", "--ctx", "512", "--shutdown-timeout", "60")
    try:
        streams = _streams(server, 2, 60)
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(f"{server.url}/health", timeout=30).status_code == 503)  # draining
        refused = httpx.post(f"{server.url}/api/generate", json={"model": "smollm2", "prompt": "hi"}, timeout=30)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        for s in streams:
            s.join(120)
            assert s.error is None
            assert s.lines[-1]["done"] is True and s.lines[-1]["eval_count"] == 60
        assert server.proc.wait(60) == 0
    finally:
        server.stop()


def test_drain_timeout_cuts_requests_and_still_exits_zero(model_home: Path) -> None:
    server = start_server(model_home, "--parallel", "1", "--ctx", "2048", "--shutdown-timeout", "1")
    try:
        (stream,) = _streams(server, 1, 1800)
        server.proc.send_signal(signal.SIGTERM)
        stream.join(60)
        assert not stream.is_alive()
        last = stream.lines[-1]
        assert "error" in last or stream.error is not None  # cut: an error line ends the stream
        assert not any(line.get("done") for line in stream.lines)
        assert server.proc.wait(60) == 0
    finally:
        server.stop()


def test_second_signal_exits_at_once(model_home: Path) -> None:
    server = start_server(model_home, "--parallel", "1", "--ctx", "2048", "--shutdown-timeout", "120")
    try:
        (stream,) = _streams(server, 1, 1800)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(30)
        assert code == 128 + signal.SIGINT
        stream.join(30)
        assert not any(line.get("done") for line in stream.lines)  # it did not wait for the request
    finally:
        server.stop()
