"""Shared fixtures: the tiny random-weight GGUF (fast mechanics) and SmolLM2 (real behaviour)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymodel import write_tiny_gguf


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama GGUF with random weights, byte-level BPE vocab and a ChatML template."""
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the default store (`make test` pulls it first)."""
    from llamarun.store import ModelStore

    try:
        return ModelStore().get("smollm2").path
    except Exception as exc:  # noqa: BLE001 - turn into a clear instruction
        pytest.fail(f"SmolLM2 is not in the store ({exc}); run `make model` or `llamarun pull smollm2`")
