"""Start and stop real `llamarun serve --grpc-port 0` processes on a temporary store (by PID)."""

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
from typing import Any

import grpc

from llamarun.grpc.v1 import llamarun_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GrpcServer:
    """A running `llamarun serve` with gRPC on ``grpc_port`` (and HTTP on ``http_url`` unless --no-http)."""

    proc: subprocess.Popen[str]
    grpc_port: int
    http_url: str | None
    stderr: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def channel(self, **options: Any) -> grpc.Channel:
        return grpc.insecure_channel(self.target, options=list(options.items()))

    def stub(self, channel: grpc.Channel | None = None) -> pb_grpc.LlamarunStub:
        return pb_grpc.LlamarunStub(channel or self.channel())

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _pump(stream: Any, sink: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:
        sink.append(line)
        if lines is not None:
            lines.put(line)


def start_grpc_server(home: Path, *args: str, wait: float = 120) -> GrpcServer:
    """`llamarun serve --port 0 --grpc-port 0 ...` over the store at ``home``; returns once every
    frontend it starts listens."""
    config = home / "config.toml"
    config.touch()
    env = {**os.environ, "LLAMARUN_HOME": str(home), "LLAMARUN_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    for key in ("LLAMARUN_API_KEY", "LLAMARUN_HOST", "LLAMARUN_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "llamarun", "serve", "--port", "0", "--grpc-port", "0", "--threads", "1",
           "--log-level", "WARNING", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, [], lines), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, stderr, None), daemon=True).start()
    grpc_port, http_url = None, None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {''.join(stderr)[-2000:]}") from None
            continue
        if line.startswith("grpc listening on "):
            grpc_port = int(line.rsplit(":", 1)[1])
        elif line.startswith("listening on "):
            http_url = line.split()[-1].strip()
        if grpc_port is not None and (http_url is not None or "--no-http" in args):
            return GrpcServer(proc, grpc_port, http_url, stderr)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"server did not start: {''.join(stderr)[-2000:]}")


def wait_until(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something true (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {check}")
        time.sleep(interval)
