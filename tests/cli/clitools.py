"""Helpers of the CLI tests: run `python -m llamarun` as a subprocess or under a pseudo-terminal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

LLAMARUN = [sys.executable, "-m", "llamarun"]


def cli(*args: str, home: Path | None = None, stdin: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    if home is not None:
        env["LLAMARUN_HOME"] = str(home)
    return subprocess.run([*LLAMARUN, *args], input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=timeout, env=env)


def spawn(*args: str, home: Path, timeout: float = 120):  # -> pexpect.spawn
    """`python -m llamarun ARGS` under a real pseudo-terminal."""
    import pexpect

    env = {**os.environ, "LLAMARUN_HOME": str(home), "TERM": "dumb"}
    child = pexpect.spawn(sys.executable, ["-m", "llamarun", *args], env=env, encoding="utf-8",
                          timeout=timeout, dimensions=(50, 250))
    child.delaybeforesend = 0.05
    if os.environ.get("LLAMARUN_TEST_TRANSCRIPT"):  # show the session: pytest -s with this set
        child.logfile_read = sys.stdout
    return child


def make_tiny_home(path: Path, tiny_model_path: Path) -> Path:
    """A private store at `path` holding the tiny random-weight model as `tiny`."""
    proc = cli("create", "tiny", "--from", str(tiny_model_path), "-q", home=path)
    assert proc.returncode == 0, proc.stderr
    return path


def wait_listening(proc: subprocess.Popen, log: Path) -> str:
    """The URL a `serve --port 0` child prints, or a test failure with its log."""
    assert proc.stdout is not None
    for line in proc.stdout:  # pytest-timeout bounds a server that never starts
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return match.group(1)
    proc.wait()
    pytest.fail(f"llamarun serve exited ({proc.returncode}): {log.read_text()}")


@contextmanager
def serving(home: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A real `llamarun serve --port 0 ARGS` on 127.0.0.1 over the store at ``home``: yields its URL,
    always stopped by PID (SIGTERM, then kill)."""
    log = home.parent / "serve.log"
    with open(log, "w") as errors:  # a file, not a pipe nobody reads
        proc = subprocess.Popen([*LLAMARUN, "serve", "--host", "127.0.0.1", "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=errors, text=True,
                                env={**(os.environ if env is None else env), "LLAMARUN_HOME": str(home)})
    try:
        yield wait_listening(proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
