"""The GGUF validator: real files pass with their facts; a malformed corpus gives GGUFFormatError,
never a crash and never a large allocation."""

from __future__ import annotations

import os
import struct
import tracemalloc
from pathlib import Path

import pytest

from llamarun.errors import GGUFFormatError, ModelLoadError
from llamarun.gguf import check_gguf

from .ggufbuild import (
    ARRAY,
    BASE_DATA,
    BASE_KVS,
    F32,
    Q4_0,
    STRING,
    U8,
    U64,
    build,
    kv_str,
    kv_u32,
    s,
    tensor,
)

MAX_PEAK = 8 << 20  # bytes Python may allocate while checking one hostile file


def test_smollm2_facts(smollm2_path: Path) -> None:
    info = check_gguf(smollm2_path)
    assert (info.architecture, info.quantization, info.context_length) == ("llama", "Q4_1", 8192)
    assert info.parameters == "135M" and info.license == "apache-2.0"
    assert "<|im_start|>" in (info.chat_template or "")
    assert info.metadata["tokenizer.ggml.tokens"].length == 49152
    assert info.tensor_count == 272 and info.data_offset < info.file_size


def test_tiny_model_facts(tiny_model_path: Path) -> None:
    info = check_gguf(tiny_model_path)
    assert (info.architecture, info.quantization, info.context_length) == ("llama", "F32", 2048)
    assert info.summary()["parameter_count"] == info.parameter_count > 0


def test_handbuilt_baseline_passes(tmp_path: Path) -> None:
    path = tmp_path / "base.gguf"
    path.write_bytes(build())
    info = check_gguf(path)
    assert info.tensor_count == 2 and info.parameter_count == 16 and info.alignment == 32


def _check_rejects(path: Path, data: bytes) -> GGUFFormatError:
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(GGUFFormatError) as caught:
            check_gguf(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK, f"checking {path.name} allocated {peak} bytes"
    assert path.name in str(caught.value)
    return caught.value


HUGE = [2**63, 2**64 - 1, 2**63 - 1, 2**32]

CORPUS = {
    "empty": b"",
    "three-bytes": b"GGU",
    "magic-only": b"GGUF",
    "bad-magic": build(magic=b"GGML"),
    "version-1": build(version=1),
    "version-4": build(version=4),
    **{f"n_kv-{n}": build(n_kv=n) for n in HUGE + [3]},
    **{f"n_tensors-{n}": build(n_tensors=n) for n in HUGE + [3]},
    "key-length-2^63": build(kvs=[s("general.architecture", 2**63)]),
    "key-length-over-limit": build(kvs=[s("k", 10**6) + b"k"]),
    "key-length-past-end": build(kvs=[s("k", 500) + b"k"], tensors=[], data=b""),
    "string-value-2^64-1": build(kvs=[s("general.name") + struct.pack("<I", STRING) + struct.pack("<Q", 2**64 - 1)]),
    "string-value-past-end": build(kvs=BASE_KVS + [s("general.name") + struct.pack("<IQ", STRING, 5000)],
                                   tensors=[]),
    "array-u8-2^62": build(kvs=[s("x") + struct.pack("<IIQ", ARRAY, U8, 2**62)]),
    "array-strings-2^61": build(kvs=[s("x") + struct.pack("<IIQ", ARRAY, STRING, 2**61)]),
    "array-string-element-2^63": build(kvs=[s("x") + struct.pack("<IIQ", ARRAY, STRING, 20) + s("a") * 17
                                            + struct.pack("<Q", 2**63)]),
    "array-of-arrays": build(kvs=[s("x") + struct.pack("<IIQ", ARRAY, ARRAY, 1) + struct.pack("<IQ", U8, 1)]),
    "unknown-value-type": build(kvs=[s("x") + struct.pack("<I", 13) + b"\0" * 8]),
    "value-type-0xffffffff": build(kvs=[s("x") + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 8]),
    "duplicate-key": build(kvs=BASE_KVS + [kv_str("general.architecture", "other")]),
    "alignment-0": build(kvs=[kv_u32("general.alignment", 0)]),
    "alignment-3": build(kvs=[kv_u32("general.alignment", 3)]),
    "alignment-2^31": build(kvs=[kv_u32("general.alignment", 2**31)]),
    "alignment-u64-2^63": build(kvs=[s("general.alignment") + struct.pack("<IQ", U64, 2**63)]),
    "alignment-string": build(kvs=[kv_str("general.alignment", "32")]),
    "tensor-0-dims": build(tensors=[tensor("a", [], n_dims=0)]),
    "tensor-5-dims": build(tensors=[tensor("a", [1, 1, 1, 1, 1])]),
    "tensor-2^32-1-dims": build(tensors=[tensor("a", [1], n_dims=2**32 - 1)]),
    "tensor-zero-dim": build(tensors=[tensor("a", [8, 0])]),
    "tensor-dim-2^63": build(tensors=[tensor("a", [2**63])]),
    "tensor-elements-overflow": build(tensors=[tensor("a", [2**32, 2**32])]),
    "tensor-unknown-type": build(tensors=[tensor("a", [8], ggml_type=200)]),
    "tensor-block-misfit": build(tensors=[tensor("a", [8], ggml_type=Q4_0)]),
    "tensor-offset-misaligned": build(tensors=[tensor("a", [8], F32, 4)]),
    "tensor-offset-past-end": build(tensors=[tensor("a", [8], F32, 2**40)]),
    "tensor-offset-2^64-32": build(tensors=[tensor("a", [8], F32, 2**64 - 32)]),
    "tensor-data-past-end": build(data=BASE_DATA[:40]),
    "tensor-huge-data": build(tensors=[tensor("a", [2**40], F32, 0)]),
    "tensors-overlap": build(tensors=[tensor("a", [8], F32, 0), tensor("b", [8], F32, 0)]),
    "tensor-duplicate-name": build(tensors=[tensor("a", [8], F32, 0), tensor("a", [8], F32, 32)]),
    "tensor-name-64-bytes": build(tensors=[tensor("n" * 64, [8])]),
    "tensor-name-length-2^63": build(tensors=[s("a", 2**63)]),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_malformed_corpus(tmp_path: Path, case: str) -> None:
    _check_rejects(tmp_path / f"{case}.gguf", CORPUS[case])


def test_every_prefix_of_the_tiny_model(tmp_path: Path, tiny_model_path: Path) -> None:
    """Every prefix through the header and metadata, and every tensor boundary of the data, is refused."""
    data = tiny_model_path.read_bytes()
    info = check_gguf(tiny_model_path)
    cuts = set(range(info.data_offset + 64))
    for t in info.tensors:
        end = info.data_offset + t.offset + t.n_bytes
        cuts.update({end - 1, info.data_offset + t.offset + 1})
    cuts.update(range(info.data_offset, len(data), 4099))
    cuts.add(len(data) - 1)
    path = tmp_path / "prefix.gguf"
    path.write_bytes(data)
    failures = []
    for n in sorted(cuts, reverse=True):  # shrink one file in place
        os.truncate(path, n)
        try:
            check_gguf(path)
            failures.append(n)
        except GGUFFormatError as exc:
            assert "prefix.gguf" in str(exc)
    assert not failures, f"prefixes accepted: {failures[:10]}"
    assert len(cuts) > info.data_offset


def test_missing_directory_and_fifo_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="nope.gguf") as missing:
        check_gguf(tmp_path / "nope.gguf")
    assert not isinstance(missing.value, GGUFFormatError)
    with pytest.raises(ModelLoadError, match="directory"):
        check_gguf(tmp_path)
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        check_gguf(fifo)  # must not block waiting for a writer


def test_memory_budget_bounds_what_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a file holds, the facts keep at most KEEP_TOTAL bytes (long values are cut, not read)."""
    import llamarun.gguf.check as gc

    monkeypatch.setattr(gc, "KEEP_TOTAL", 3000)
    path = tmp_path / "long-strings.gguf"
    path.write_bytes(build(kvs=[*BASE_KVS] + [kv_str(f"x.{i}", "v" * 1000) for i in range(4)]))
    info = check_gguf(path)
    kept = [len(info.metadata[f"x.{i}"]) for i in range(4)]
    assert sum(kept) < 3000 and kept[0] == 1000 and kept[-1] == 0
    _check_rejects(tmp_path / "many-keys.gguf", build(kvs=[kv_u32(f"k.{i:05d}", i) for i in range(20)]))
