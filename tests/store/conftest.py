"""Fixtures for the store tests: tiny GGUF payloads, a store in a temp folder, local servers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tinymodel import write_tiny_gguf

from llamarun.store import ModelStore, TransferPolicy

from .servers import LocalServer, file_handler

FAST = TransferPolicy(retries=3, backoff=0.01, backoff_max=0.05, connect_timeout=5.0, read_timeout=5.0)


@pytest.fixture(scope="session")
def tiny_bytes(tiny_model_path: Path) -> bytes:
    return tiny_model_path.read_bytes()


@pytest.fixture(scope="session")
def gguf_variant(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    """Distinct small GGUF files (different digests): ``gguf_variant(seed, n_embd=...)``."""
    cache: dict[tuple[int, int], bytes] = {}
    folder = tmp_path_factory.mktemp("variants")

    def make(seed: int, n_embd: int = 32) -> bytes:
        if (seed, n_embd) not in cache:
            path = write_tiny_gguf(folder / f"v{seed}-{n_embd}.gguf", seed=seed, n_embd=n_embd, n_layer=1, n_ff=64)
            cache[(seed, n_embd)] = path.read_bytes()
        return cache[(seed, n_embd)]

    return make


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> ModelStore:
    return ModelStore(root, policy=FAST)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(file_handler) as srv:
        yield srv


def leftovers(root: Path) -> list[str]:
    """Work files left in partial/ (lock files are kept on purpose)."""
    folder = root / "partial"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []
