"""Tiny random-weight llama GGUFs for the NumPy backend's tests, written with the ``gguf`` package.

Unlike ``tests/tinymodel.py`` these vary what the NumPy backend must read right: quantized
tensor types, grouped-query attention, tied embeddings, a RoPE base, and a SentencePiece
vocabulary with byte fallback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tinymodel import MERGES, SPECIALS, tiny_vocab

SPM_PIECES = ["▁", "▁t", "▁th", "▁the", "he", "in", "▁a", "er", "▁in", "on", "▁o", "re", "at", "▁is", "is",
              "▁c", "an", "▁an", "and", "▁and", "▁w", "▁wor", "or", "ld", "▁world", "▁hel", "lo", "▁hello",
              "▁▁", "▁▁▁▁", "ing", "▁of", "of", "▁to", "to", "en", "es", "▁s", "st", "▁st", "ar", "ti", "ion"]


def spm_vocab() -> tuple[list[str], list[int], list[float]]:
    """<unk> <s> </s>, the 256 byte tokens, then merged pieces scored by their order."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + SPM_PIECES
    types = [2, 3, 3] + [6] * 256 + [1] * len(SPM_PIECES)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(SPM_PIECES))]
    return tokens, types, scores


def write_variant(path: Path, *, vocab: str = "bpe", qtype: str = "F32", n_embd: int = 64, n_layer: int = 2,
                  n_head: int = 4, n_head_kv: int = 2, n_ff: int = 128, tied: bool = True,
                  rope_base: float = 50000.0, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    qt = gguf.GGMLQuantizationType[qtype]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"tiny-{vocab}-{qtype}")
    writer.add_context_length(1024)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_rope_freq_base(rope_base)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)
    if vocab == "spm":
        tokens, types, scores = spm_vocab()
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_scores(scores)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
    else:
        tokens, types = tiny_vocab()
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("smollm")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges([" ".join(m) for m in MERGES])
        writer.add_bos_token_id(SPECIALS.index("<|endoftext|>"))
        writer.add_eos_token_id(SPECIALS.index("<|im_end|>"))
        writer.add_add_bos_token(False)
    n_vocab = len(tokens)
    head_dim = n_embd // n_head

    def tensor(name: str, *shape: int, quantize: bool = True) -> None:
        data = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if quantize and qt != gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, gguf.quants.quantize(data, qt), raw_dtype=qt)
        else:
            writer.add_tensor(name, data)

    def ones(name: str) -> None:
        writer.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(n_embd)).astype(np.float32))

    tensor("token_embd.weight", n_vocab, n_embd)
    ones("output_norm.weight")
    if not tied:
        tensor("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        ones(f"blk.{i}.attn_norm.weight")
        ones(f"blk.{i}.ffn_norm.weight")
        tensor(f"blk.{i}.attn_q.weight", n_head * head_dim, n_embd)
        tensor(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
        tensor(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
        tensor(f"blk.{i}.attn_output.weight", n_embd, n_head * head_dim)
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_f32_copy(source: Path, path: Path) -> Path:
    """``source``'s metadata and tensors, every tensor dequantized to F32 (the same numbers, so
    llama.cpp computes in float32 with no quantized activations)."""
    import gguf

    reader = gguf.GGUFReader(str(source), "r")
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(path), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, data.reshape([int(n) for n in reversed(tensor.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
