"""Start and stop real `llamarun serve` processes on 127.0.0.1 (port 0) over a temporary store."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """A running `llamarun serve`; ``url`` is its base URL."""

    proc: subprocess.Popen[str]
    url: str
    port: int
    home: Path
    stderr: list[str] = field(default_factory=list)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=30).json()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _pump(stream, sink: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:
        sink.append(line)
        if lines is not None:
            lines.put(line)


def start_server(home: Path, *args: str, env: dict[str, str] | None = None, wait: float = 120) -> Server:
    """Start `llamarun serve --port 0 ...` on the store at ``home``; returns once it listens."""
    config = home / "config.toml"
    config.touch()
    full_env = {**os.environ, "LLAMARUN_HOME": str(home), "LLAMARUN_CONFIG": str(config),
                "PYTHONUNBUFFERED": "1", **(env or {})}
    for key in ("LLAMARUN_API_KEY", "LLAMARUN_HOST", "LLAMARUN_PORT"):
        if env is None or key not in env:
            full_env.pop(key, None)
    cmd = [sys.executable, "-m", "llamarun", "serve", "--port", "0", "--threads", "1", "--log-level", "WARNING", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout_lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, [], stdout_lines), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, stderr, None), daemon=True).start()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            line = stdout_lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {''.join(stderr)[-2000:]}") from None
            continue
        if line.startswith("listening on "):
            url = line.split()[-1].strip()
            return Server(proc, url, int(url.rsplit(":", 1)[1]), home, stderr)
    proc.kill()
    raise RuntimeError(f"server did not start: {''.join(stderr)[-2000:]}")


