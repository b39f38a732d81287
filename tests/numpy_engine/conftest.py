"""Fixtures of the NumPy backend's tests (marked ``numpy_engine``: ``pytest -m numpy_engine`` runs them alone).

SmolLM2 is loaded once per session on each backend; the tiny variants are written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from numpy_variants import write_variant


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.numpy_engine)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``variant(vocab=..., qtype=...)``: a tiny GGUF of that kind (written once per session)."""
    made: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("numpy-variants")

    def make(**options: Any) -> Path:
        key = tuple(sorted(options.items()))
        if key not in made:
            name = "-".join(f"{k}{v}" for k, v in key) or "default"
            made[key] = write_variant(root / f"{name}.gguf", **options)
        return made[key]

    return make


@pytest.fixture(scope="session")
def smol_numpy(smollm2_path: Path) -> Iterator[Any]:
    from llamarun.numpy_engine import Model

    model = Model(smollm2_path)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smol_llama(smollm2_path: Path) -> Iterator[Any]:
    from llamarun.engine import Model

    model = Model(smollm2_path)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smol_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, smollm2_path: Path) -> Iterator[Any]:
    """`llamarun serve --backend numpy` on a store with ``tiny`` and ``smollm2``, as tests/http's server."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "http"))
    from serve_helpers import start_server

    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("numpy-store")
    store = ModelStore(home)
    store.create("tiny", tiny_model_path)
    store.create("smollm2", smollm2_path, link=True)
    server = start_server(home, "--backend", "numpy", "--parallel", "4", "--ctx", "2048", "--keep-alive", "-1")
    try:
        yield server
    finally:
        server.stop()
