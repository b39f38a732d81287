"""The memory estimate against what llama.cpp itself reports allocating (real contexts)."""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llamarun.engine import Context, Model
from llamarun.errors import GGUFFormatError, ModelLoadError
from llamarun.gguf import read_model_facts
from llamarun.hardware import context_cells, estimate_memory
from llamarun.types import ContextOptions

MIB = 1 << 20
# e.g. "llama_kv_cache:        CPU KV buffer size =    45.00 MiB"
#      "sched_reserve:        CPU compute buffer size =    98.25 MiB"
#      "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB"
BUFFER = re.compile(r"^\S+:\s+(\S+)\s+(model|KV|compute|output) buffer size =\s*([\d.]+) MiB")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def buffers(self) -> dict[str, float]:
        """Bytes llama.cpp reported allocating, summed over devices, by kind."""
        sizes: dict[str, float] = {}
        for line in self.lines:
            match = BUFFER.match(line.strip())
            if match:
                sizes[match.group(2)] = sizes.get(match.group(2), 0.0) + float(match.group(3)) * MIB
        return sizes


@contextmanager
def llama_log() -> Iterator[_Capture]:
    """llama.cpp's own log lines (logger 'llamarun.llama_cpp' at DEBUG) while the block runs."""
    logger = logging.getLogger("llamarun.llama_cpp")
    handler, old_level = _Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> Iterator[tuple[Model, float]]:
    """SmolLM2 loaded once, with the model buffer size llama.cpp reported at load."""
    with llama_log() as log:
        model = Model(smollm2_path)
    weights = log.buffers()["model"]
    yield model, weights
    model.close()


@pytest.mark.smollm2
@pytest.mark.parametrize("n_ctx", [512, 2048, 8192])
@pytest.mark.parametrize("n_seq_max", [1, 4])
def test_estimate_within_15_percent_of_llama_cpp(smollm2: tuple[Model, float], n_ctx: int, n_seq_max: int) -> None:
    model, reported_weights = smollm2
    facts = read_model_facts(model.path)
    options = ContextOptions(n_ctx=n_ctx, n_seq_max=n_seq_max)
    with llama_log() as log, Context(model, options) as ctx:
        reported = log.buffers()
        cells = ctx.n_ctx
    estimate = estimate_memory(facts, n_ctx=n_ctx, n_seq_max=n_seq_max, n_batch=options.n_batch,
                               n_ubatch=options.n_ubatch, kv_unified=options.kv_unified)
    total = reported_weights + reported["KV"] + reported["compute"] + reported.get("output", 0.0)

    assert estimate.n_ctx == cells  # the same padding and per-sequence rounding as llama.cpp
    assert estimate.total == pytest.approx(total, rel=0.15)
    # Each part on its own, too: weights and KV cache are exact, compute close.
    assert estimate.weights == pytest.approx(reported_weights, rel=0.01)
    assert estimate.kv_cache == pytest.approx(reported["KV"], rel=0.01)
    assert estimate.compute == pytest.approx(reported["compute"], rel=0.15)


@pytest.mark.smollm2
def test_estimate_without_flash_attention_grows_with_context(smollm2: tuple[Model, float]) -> None:
    """Without flash attention the KQ scores over the whole context dominate the compute buffer."""
    model, _ = smollm2
    facts = read_model_facts(model.path)
    with llama_log() as log, Context(model, ContextOptions(n_ctx=8192, flash_attn=False)):
        reported = log.buffers()["compute"]
    estimate = estimate_memory(facts, n_ctx=8192, flash_attn=False).compute
    assert estimate == pytest.approx(reported, rel=0.15)
    assert estimate > estimate_memory(facts, n_ctx=8192, flash_attn=True).compute * 1.5


@pytest.mark.smollm2
def test_facts_match_what_llama_cpp_loaded(smollm2: tuple[Model, float]) -> None:
    model, reported_weights = smollm2
    facts, info = read_model_facts(model.path), model.info
    assert (facts.architecture, facts.n_layer, facts.n_embd, facts.n_head) == (
        info.architecture, info.n_layer, info.n_embd, info.n_head)
    assert set(facts.n_head_kv) == {info.n_head_kv}
    assert (facts.n_vocab, facts.n_ctx_train, facts.n_params) == (info.n_vocab, info.n_ctx_train, info.n_params)
    assert facts.weights_bytes == info.size_bytes
    assert facts.file_type == info.quantization == "Q4_1"
    assert sum(facts.layer_bytes) + facts.input_bytes < facts.weights_bytes <= facts.file_size


def test_tiny_model_facts_and_cells(tiny_model_path: Path) -> None:
    facts = read_model_facts(tiny_model_path)
    with Model(tiny_model_path) as model:
        info = model.info
        assert (facts.n_layer, facts.n_embd, facts.n_vocab, facts.n_params) == (
            info.n_layer, info.n_embd, info.n_vocab, info.n_params)
        for n_ctx, n_seq in [(300, 3), (512, 4), (1000, 1), (1024, 2)]:
            with Context(model, ContextOptions(n_ctx=n_ctx, n_seq_max=n_seq)) as ctx:
                assert context_cells(n_ctx, n_seq) == (ctx.n_ctx, ctx.n_ctx // n_seq)


def test_context_cells_padding() -> None:
    assert context_cells(1, 1) == (256, 256)
    assert context_cells(512, 4) == (1024, 256)  # each sequence gets at least 256 cells
    assert context_cells(300, 3) == (768, 256)
    assert context_cells(300, 3, kv_unified=True) == (512, 512)
    assert context_cells(8192, 4) == (8192, 2048)


def test_malformed_files_are_typed_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError):
        read_model_facts(missing)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1 << 60) + b"\0" * 64)
    with pytest.raises(GGUFFormatError):
        read_model_facts(huge)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1000) + b"general.")
    with pytest.raises(GGUFFormatError):
        read_model_facts(truncated)


def test_truncated_copy_of_a_real_header(tiny_model_path: Path, tmp_path: Path) -> None:
    data = tiny_model_path.read_bytes()
    for cut in (30, 200, 2000):
        part = tmp_path / f"cut{cut}.gguf"
        part.write_bytes(data[:cut])
        with pytest.raises(GGUFFormatError):
            read_model_facts(part)
