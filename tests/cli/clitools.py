"""Helpers of the CLI tests: run `python -m llamarun` as a subprocess or under a pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
