"""GGUF reading: configuration from metadata, dequantized weights, memory refusal, malformed files."""

from __future__ import annotations

import numpy as np
import pytest

from llamarun import engine
from llamarun import numpy_engine as ne
from llamarun.errors import GGUFFormatError, InsufficientMemoryError, ModelLoadError
from llamarun.types import ContextOptions


def _logits(model, context_type, batch_type, tokens):
    ctx = context_type(model, ContextOptions(n_ctx=128, n_batch=64, n_seq_max=1, n_threads=1))
    batch = batch_type(64, 1)
    for i, token in enumerate(tokens):
        batch.add(token, i, 0, True)
    ctx.decode(batch)
    return np.stack([ctx.logits(i) for i in range(len(tokens))])


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_config_from_metadata(variant):
    model = ne.Model(variant(n_head_kv=2, rope_base=50000.0, tied=True))
    c = model.config
    assert (c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff, c.head_dim) == (64, 2, 4, 2, 128, 16)
    assert c.rope_base == 50000.0 and c.tied_embeddings and c.rms_eps == pytest.approx(1e-6)
    assert model.info.n_head_kv == 2 and model.info.n_vocab == model.vocab.n_tokens
    assert model.f32_bytes > 0


@pytest.mark.parametrize(("qtype", "vocab", "least"), [
    ("F32", "bpe", 0.99999), ("F16", "spm", 0.9999), ("BF16", "bpe", 0.999),
    ("Q8_0", "spm", 0.99), ("Q4_0", "bpe", 0.98), ("Q4_1", "bpe", 0.98)])
def test_logits_match_llama_cpp_per_type(variant, qtype, vocab, least):
    """Random weights amplify llama.cpp's rounding of activations for quantized weights: the
    bound is looser for those, and argmax agreement is checked on every type."""
    path = variant(qtype=qtype, vocab=vocab, tied=qtype != "Q4_0")
    lm, nm = engine.Model(path), ne.Model(path)
    tokens = lm.tokenize("hello the world and is in the tin  of 123 émoji 🎉")[:40]
    theirs = _logits(lm, engine.Context, engine.Batch, tokens)
    ours = _logits(nm, ne.Context, ne.Batch, tokens)
    assert _cosines(theirs, ours).min() >= least
    assert np.mean(theirs.argmax(1) == ours.argmax(1)) >= 0.9


@pytest.mark.parametrize(("ftype", "kquants"), [("Q4_K_M", {"Q4_K", "Q6_K"}), ("Q5_K_M", {"Q5_K", "Q6_K"})])
def test_k_quants_from_llama_cpp_match(variant, tmp_path, ftype, kquants):
    """K-quant tensors written by llama.cpp's own quantizer (gguf cannot write them), read back
    with gguf's dequantizers: a model 256 wide, so every matrix takes the K-quant blocks."""
    import gguf

    from llamarun.engine.quantize import quantize_gguf

    source = variant(qtype="F32", n_embd=256, n_ff=512, n_head=4, n_head_kv=2, tied=False)
    path = tmp_path / f"{ftype}.gguf"
    quantize_gguf(source, path, ftype)
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(path), "r").tensors}
    assert kquants <= types, types
    lm = engine.Model(path)
    tokens = lm.tokenize("hello the world and is in the tin  of 123 émoji 🎉")[:40]
    theirs = _logits(lm, engine.Context, engine.Batch, tokens)
    for emulate, least in ((False, 0.97), (True, 0.995)):  # llama.cpp rounds activations to Q8_K blocks
        ours = _logits(ne.Model(path, emulate_llama_cpp=emulate), ne.Context, ne.Batch, tokens)
        assert _cosines(theirs, ours).min() >= least
        assert np.mean(theirs.argmax(1) == ours.argmax(1)) >= 0.9


def test_refuses_what_will_not_fit(variant):
    with pytest.raises(InsufficientMemoryError, match="GiB"):
        ne.Model(variant(), available_memory=lambda: 1000)


def test_refuses_other_architectures(tmp_path):
    import gguf

    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="mamba"):
        ne.Model(path)


def _malformed(tmp_path, kind, smollm2_path):
    path = tmp_path / f"{kind}.gguf"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "magic":
        path.write_bytes(b"GGUF")
    elif kind == "text":
        path.write_text("this is not a model\n" * 10)
    elif kind == "truncated":
        with open(smollm2_path, "rb") as f:
            path.write_bytes(f.read(1 << 20))
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "magic", "text", "truncated"])
def test_malformed_files_give_the_same_errors(tmp_path, kind, smollm2_path):
    path = _malformed(tmp_path, kind, smollm2_path)
    errors = []
    for model_type in (engine.Model, ne.Model):
        with pytest.raises(ModelLoadError, match=path.name) as caught:
            model_type(path)
        errors.append(type(caught.value))
    assert errors[0] is errors[1]
    if kind in ("empty", "magic", "text"):
        assert errors[0] is GGUFFormatError
