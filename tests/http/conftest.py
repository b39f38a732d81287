"""Fixtures: a temporary store with the test models and a shared SmolLM2 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_helpers import Server, start_server

@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, smollm2_path: Path) -> Path:
    """A store with ``tiny`` (random weights) and ``smollm2`` (linked, not copied)."""
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("store")
    store = ModelStore(home)
    store.create("tiny", tiny_model_path)
    store.create("smollm2", smollm2_path, link=True)
    return home


@pytest.fixture(scope="session")
def smol_server(model_home: Path) -> Iterator[Server]:
    """One server for the client tests: SmolLM2 and tiny, 4 slots of 2048 tokens."""
    server = start_server(model_home, "--parallel", "4", "--ctx", "2048", "--keep-alive", "-1")
    try:
        yield server
    finally:
        server.stop()
