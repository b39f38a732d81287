"""Start and stop real `llamarun bridge` processes (stopped by PID), and a plain-socket client."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def short_dir() -> Path:
    """A fresh directory with a short path (a socket path holds at most 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="brg", dir="/tmp"))


@dataclass
class Bridge:
    proc: subprocess.Popen[str]
    path: Path
    tcp: tuple[str, int] | None = None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def client(self, timeout: float = 120) -> Client:
        return Client(self.path, timeout=timeout)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def _pump(stream: Any, sink: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:
        sink.append(line)
        if lines is not None:
            lines.put(line)


def launch(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    config = home / "config.toml"
    config.touch()
    full_env = {**os.environ, "LLAMARUN_HOME": str(home), "LLAMARUN_CONFIG": str(config), "PYTHONUNBUFFERED": "1",
                **(env or {})}
    cmd = [sys.executable, "-m", "llamarun", "bridge", "--threads", "1", "--log-level", "WARNING", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_bridge(home: Path, *args: str, env: dict[str, str] | None = None, wait: float = 120) -> Bridge:
    """`llamarun bridge ARGS` on the store at ``home``; returns once it listens (on TCP too if asked)."""
    proc = launch(home, *args, env=env)
    lines: queue.Queue[str] = queue.Queue()
    bridge = Bridge(proc, Path())
    threading.Thread(target=_pump, args=(proc.stdout, bridge.stdout, lines), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, bridge.stderr, None), daemon=True).start()
    deadline = time.monotonic() + wait
    want_tcp = "--tcp" in args
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2).strip()
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {proc.returncode}: {''.join(bridge.stderr)[-2000:]}") from None
            continue
        if line.startswith("listening on unix:"):
            bridge.path = Path(line.removeprefix("listening on unix:"))
        elif line.startswith("listening on tcp:"):
            host, _, port = line.removeprefix("listening on tcp:").rpartition(":")
            bridge.tcp = (host, int(port))
        if bridge.path != Path() and (bridge.tcp is not None or not want_tcp):
            return bridge
    os.kill(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"bridge did not start: {''.join(bridge.stderr)[-2000:]}")


class Client:
    """One connection: send lines, read JSON reply lines."""

    def __init__(self, path: Path | None = None, *, tcp: tuple[str, int] | None = None, timeout: float = 120) -> None:
        if tcp is not None:
            self.sock = socket.create_connection(tcp, timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
        self.replies = self.sock.makefile("rb")

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\n")

    def read(self) -> dict[str, Any] | None:
        raw = self.replies.readline()
        return json.loads(raw) if raw else None

    def reply(self, line: str | bytes) -> dict[str, Any]:
        """Send one non-streaming command and read its reply."""
        self.send(line)
        answer = self.read()
        assert answer is not None, f"connection closed after {line!r}"
        return answer

    def until_done(self) -> list[dict[str, Any]]:
        """Reply lines up to a command's last one (chunks first)."""
        out: list[dict[str, Any]] = []
        while True:
            reply = self.read()
            assert reply is not None, f"connection closed after {out[-3:]}"
            out.append(reply)
            if reply["message"] not in ("chunk", "thinking"):
                return out

    def stream(self, line: str) -> list[dict[str, Any]]:
        self.send(line)
        return self.until_done()

    def ok(self, line: str) -> Any:
        answer = self.reply(line)
        assert answer["status"] == "ok", answer
        return answer["data"]

    def close(self) -> None:
        self.replies.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
