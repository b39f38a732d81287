"""Fixtures: a temporary store with the test models and one shared server with gRPC beside HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_helpers import GrpcServer, start_grpc_server


@pytest.fixture(scope="session")
def grpc_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, smollm2_path: Path) -> Path:
    """A store with ``tiny`` (random weights), ``mid`` (random weights, 100 MB of F32: a decode step
    reads more memory than it computes, as bigger models do) and ``smollm2`` (linked, not copied)."""
    from tinymodel import write_tiny_gguf

    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("grpc-store")
    store = ModelStore(home)
    store.create("tiny", tiny_model_path)
    mid = write_tiny_gguf(tmp_path_factory.mktemp("mid") / "mid-llama.gguf", n_embd=512, n_layer=8, n_head=8,
                          n_ff=1536)
    store.create("mid", mid)
    store.create("smollm2", smollm2_path, link=True)
    return home


@pytest.fixture(scope="session")
def grpc_server(grpc_home: Path) -> Iterator[GrpcServer]:
    """HTTP and gRPC on one process: 8 slots of 1024 tokens per model, at most 4 waiting."""
    server = start_grpc_server(grpc_home, "--parallel", "8", "--max-queue", "4", "--ctx", "1024",
                               "--keep-alive", "-1", "--preload", "smollm2")
    try:
        yield server
    finally:
        server.stop()
