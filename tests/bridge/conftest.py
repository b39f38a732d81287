"""Fixtures: a store with the tiny model and SmolLM2, and one shared bridge over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_helpers import Bridge, short_dir, start_bridge


@pytest.fixture(scope="session")
def bridge_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, smollm2_path: Path) -> Path:
    """A store with ``tiny`` (random weights) and ``smollm2`` (linked, not copied)."""
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("bridge-store")
    store = ModelStore(home)
    store.create("tiny", tiny_model_path)
    store.create("smollm2", smollm2_path, link=True)
    return home


@pytest.fixture(scope="session")
def bridge(bridge_home: Path) -> Iterator[Bridge]:
    """One bridge for most tests: 8 slots of 512 tokens, models kept loaded, its socket in a private
    directory under a fresh $XDG_RUNTIME_DIR."""
    runtime_dir = short_dir()
    started = start_bridge(bridge_home, "--parallel", "8", "--ctx", "512", "--keep-alive", "-1",
                           env={"XDG_RUNTIME_DIR": str(runtime_dir)})
    try:
        yield started
    finally:
        assert started.stop() == 0, "".join(started.stderr)[-2000:]
