"""Fixtures of the CLI tests: private stores (LLAMARUN_HOME) and a real `llamarun serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clitools import cli, make_tiny_home, serving


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
    with serving(served_home, "--parallel", "2", "--ctx", "512") as url:
        yield url
