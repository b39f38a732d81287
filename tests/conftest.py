"""Shared fixtures: the tiny random-weight GGUF (fast mechanics) and SmolLM2 (real behaviour)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def smol_gen(smollm2_path: Path) -> Iterator[Any]:
    """SmolLM2 behind the constrained-generation helper of tests/grammar/smolgen.py."""
    from grammar.smolgen import SmolGenerator

    generator = SmolGenerator(smollm2_path)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def smol_template(smol_gen: Any) -> Any:
    """SmolLM2's own chat template."""
    from llamarun.chat import ChatTemplate

    return ChatTemplate.for_model(smol_gen.model)
