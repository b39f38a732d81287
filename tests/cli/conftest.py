"""Fixtures of the CLI tests: private stores (LLAMARUN_HOME) and a real `llamarun serve`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clitools import LLAMARUN, cli, make_tiny_home, wait_listening


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """An empty private store and conversations folder."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture()
def smollm2_home(home: Path, smollm2_path: Path) -> Path:
    """A private store where `smollm2` names the shared SmolLM2 file (linked, not copied)."""
    proc = cli("create", "smollm2", "--from", str(smollm2_path), "--link", "-q", home=home)
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture()
def tiny_home(home: Path, tiny_model_path: Path) -> Path:
    """A private store holding the tiny random-weight model as `tiny`."""
    return make_tiny_home(home, tiny_model_path)


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """The private store `server` serves (shared by the tests of one module)."""
    return make_tiny_home(tmp_path_factory.mktemp("served") / "home", tiny_model_path)


@pytest.fixture(scope="module")
def server(served_home: Path) -> Iterator[str]:
    """A real `llamarun serve` on 127.0.0.1, any free port, serving the tiny store; always stopped."""
    env = {**os.environ, "LLAMARUN_HOME": str(served_home)}
    log = served_home.parent / "serve.log"
    with open(log, "w") as errors:  # a file, not a pipe nobody reads
        proc = subprocess.Popen([*LLAMARUN, "serve", "--host", "127.0.0.1", "--port", "0", "--parallel", "2",
                                 "--ctx", "512"], stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
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
