"""``llamarun quantize``: every offered type loads and generates; provenance; failures leave nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tinymodel import write_tiny_gguf

from llamarun.engine import QUANT_TYPES, Batch, Context, Model
from llamarun.errors import GGUFFormatError, InvalidParameterError, QuantizeError
from llamarun.quantizing import quantize_stored
from llamarun.store import ModelStore
from llamarun.store.names import parse_ref
from llamarun.types import ContextOptions


@pytest.fixture(scope="module")
def source_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """F32 weights with rows of 256, so the K-quants are made as themselves (no fallback)."""
    return write_tiny_gguf(tmp_path_factory.mktemp("qsrc") / "tiny-f32.gguf", n_embd=256, n_ff=512)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, source_gguf: Path) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("qstore"))
    store.create("tiny", source_gguf)
    return store


def _generate(path: Path, n: int = 4) -> list[int]:
    with Model(path) as model, Context(model, ContextOptions(n_ctx=128)) as ctx, Batch(16) as batch:
        prompt = model.tokenize("the cat", add_special=False)
        batch.add_tokens(prompt, 0, 0)
        out, pos = [], len(prompt)
        for _ in range(n):
            ctx.decode(batch)
            token = int(np.argmax(ctx.logits(batch.n_tokens - 1)))
            out.append(token)
            batch.clear()
            batch.add(token, pos, 0, True)
            pos += 1
        return out


def _store_files(store: ModelStore) -> tuple[set[str], list[str]]:
    blobs = {p.name for p in store.layout.blobs.iterdir()}
    work = [p.name for p in store.layout.partials.iterdir() if not p.name.endswith(".lock")] \
        if store.layout.partials.is_dir() else []
    return blobs, work


@pytest.mark.parametrize("type_name", QUANT_TYPES)
def test_each_type_loads_and_generates(store: ModelStore, type_name: str) -> None:
    result = quantize_stored("tiny", type_name, store=store, measure=False)
    model = result.model
    assert model.name == f"tiny:{type_name.lower()}"
    assert model.facts["quantization"] == type_name
    tokens = _generate(model.path)
    assert len(tokens) == 4 and all(0 <= t for t in tokens)
    source = store.get("tiny")
    assert model.digest != source.digest
    assert not result.requantized


def test_manifest_records_provenance(store: ModelStore) -> None:
    result = quantize_stored("tiny", "q4_k_m", name="tiny-small:v1", store=store, measure=True)
    source = store.get("tiny")
    origin = store.get("tiny-small:v1").manifest["quantized_from"]
    assert origin["name"] == "tiny:latest" and origin["digest"] == source.digest
    assert origin["type"] == "Q4_K_M" and origin["quantization"] == source.facts["quantization"]
    assert origin["perplexity_before"] > 1 and origin["perplexity_after"] > 1
    assert result.quality is not None and result.quality.scored_tokens > 100
    manifest = store.get("tiny-small:v1").manifest
    assert manifest["source"] == "quantize:tiny:latest" and manifest["verified_by"] == "llamarun quantize"
    from llamarun.store.blobs import hash_file

    assert f"sha256:{hash_file(store.get('tiny-small:v1').path)[0]}" == manifest["digest"]


def test_requantizing_needs_allow_requantize(store: ModelStore) -> None:
    quantize_stored("tiny", "Q8_0", name="tiny-q8", store=store, measure=False)
    before = _store_files(store)
    with pytest.raises(InvalidParameterError, match="allow-requantize") as caught:
        quantize_stored("tiny-q8", "Q4_0", store=store, measure=False)
    assert caught.value.field == "allow_requantize"
    assert _store_files(store) == before and not store.has("tiny-q8:q4_0")
    again = quantize_stored("tiny-q8", "Q4_0", store=store, allow_requantize=True, measure=False)
    assert again.requantized and again.model.manifest["quantized_from"]["requantized"] is True
    _generate(again.model.path)


def test_truncated_source_is_a_typed_error_and_leaves_nothing(store: ModelStore, source_gguf: Path,
                                                             tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(source_gguf.read_bytes())
    store.create("broken", broken, link=True)
    with open(broken, "r+b") as f:  # the tensor data is cut short after it was stored
        f.truncate(broken.stat().st_size // 2)
    ref = parse_ref("broken")
    store.layout.write_manifest(ref, {**store.layout.read_manifest(ref), "size": broken.stat().st_size,
                                      "link_mtime_ns": broken.stat().st_mtime_ns})
    before = _store_files(store)
    with pytest.raises(GGUFFormatError):
        quantize_stored("broken", "Q4_0", store=store, measure=False)
    assert _store_files(store) == before and not store.has("broken:q4_0")


def test_llama_cpp_failure_is_a_typed_error_and_leaves_nothing(store: ModelStore, source_gguf: Path,
                                                               tmp_path: Path) -> None:
    unknown = tmp_path / "unknown-arch.gguf"  # a well-formed GGUF of an architecture llama.cpp does not know
    unknown.write_bytes(source_gguf.read_bytes().replace(b"llama", b"zzzzz"))
    store.create("unknown", unknown)
    before = _store_files(store)
    with pytest.raises(QuantizeError, match="could not quantize"):
        quantize_stored("unknown", "Q4_0", store=store, measure=False)
    assert _store_files(store) == before and not store.has("unknown:q4_0")


def test_unknown_type_is_refused(store: ModelStore) -> None:
    with pytest.raises(InvalidParameterError, match="unknown quantization type") as caught:
        quantize_stored("tiny", "Q9_9", store=store, measure=False)
    assert caught.value.field == "type"
