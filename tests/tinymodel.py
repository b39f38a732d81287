"""Writes a tiny random-weight llama GGUF with the ``gguf`` package (fast mechanics tests).

Byte-level BPE vocabulary: the 256 byte tokens, a few merges, and ChatML
special tokens, so emoji and CJK split across several tokens.
:func:`write_scripted_gguf` writes one whose weights make it write a given text
(what a reasoning model writes, say) instead of random tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_vocab(specials: list[str] | None = None) -> tuple[list[str], list[int]]:
    """Control tokens ``specials`` (BOS first, EOS third; ChatML's by default), the bytes, the merges."""
    specials = specials or SPECIALS
    byte_map = _bytes_to_unicode()
    tokens = specials + [byte_map[b] for b in range(256)] + ["".join(m) for m in MERGES]
    # token types: 1 normal, 3 control
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    return tokens, types


def write_tiny_gguf(path: Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4, n_ff: int = 128,
                    n_ctx_train: int = 2048, seed: int = 0, chat_template: str | None = CHATML,
                    pooling: int | None = None, n_embd_out: int | None = None,
                    sampling: dict[str, float] | None = None, add_bos: bool = False, add_eos: bool = False,
                    sep_token: int | None = None, specials: list[str] | None = None) -> Path:
    """``sampling`` writes ``general.sampling.<key>`` values (e.g. ``{"temp": 0.0, "top_k": 1}``);
    ``pooling`` (a ``gguf.PoolingType``) makes it look like an embedding model (mean, cls...) or a
    reranker (rank), as such GGUFs declare it; ``n_embd_out`` declares an output width of its own;
    ``add_bos``/``add_eos``/``sep_token`` (added too) lay out a reranker's pairs as bge-reranker's do;
    ``specials``: another family's control tokens (BOS first, EOS third) instead of ChatML's."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens, types = tiny_vocab(specials)
    n_vocab = len(tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling))
    if n_embd_out is not None:
        writer.add_uint32("llama.embedding_length_out", n_embd_out)
    for key, value in (sampling or {}).items():
        name = f"general.sampling.{key}"
        if isinstance(value, int) and not isinstance(value, bool):
            writer.add_int32(name, value)
        else:
            writer.add_float32(name, float(value))
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(m) for m in MERGES])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    if add_eos:
        writer.add_add_eos_token(True)
    if sep_token is not None:
        writer.add_sep_token_id(sep_token)
        writer.add_bool("tokenizer.ggml.add_sep_token", True)
    if chat_template:
        writer.add_chat_template(chat_template)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    tensor("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    tensor("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{i}.{name}.weight", n_embd, n_embd)
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_scripted_gguf(path: Path, script: list[str], *, after: str = "\n", chat_template: str,
                        specials: list[str] | None = None, user_defined: tuple[str, ...] = (),
                        scale: float = 4.0) -> Path:
    """A llama GGUF that writes exactly ``script`` (then EOS) after a prompt ending in the token ``after``.

    Not random: it is a bigram table in llama's shape. Token embeddings are one-hot (``n_embd`` is
    at least the vocabulary's size), every attention and feed-forward weight is zero (so each layer
    adds nothing to the residual stream), and ``output.weight`` maps each token to the next one of
    the script, every other token to EOS. The logit of that next token is
    ``scale * sqrt(n_embd)`` (about 90) and all others are 0, so any sampler picks it. Each piece of
    ``script`` becomes one token of its own (``user_defined`` pieces such as ``<think>`` are
    user-defined tokens, as reasoning models' vocabularies have them; the others normal byte-level
    tokens), and no piece may repeat or equal ``after`` (the table has one successor per token).
    """
    import gguf

    tokens, types = tiny_vocab(specials)
    byte_map = _bytes_to_unicode()
    for piece in user_defined:
        tokens.append(piece)
        types.append(4)
    index = {token: i for i, token in enumerate(tokens)}

    def token_of(text: str) -> int:
        if text in user_defined:
            return index[text]
        piece = "".join(byte_map[b] for b in text.encode("utf-8"))
        if piece not in index:
            index[piece] = len(tokens)
            tokens.append(piece)
            types.append(1)
        return index[piece]

    chain = [token_of(after), *map(token_of, script)]
    if len(set(chain)) != len(chain):
        raise ValueError("a bigram script cannot repeat a token (or use the trigger token)")
    n_vocab, eos = len(tokens), 2
    n_embd = max(64, -(-n_vocab // 64) * 64)
    n_head, n_ff = 4, 64
    nexts = [eos] * n_vocab
    for current, following in zip(chain, chain[1:]):
        nexts[current] = following
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    output[nexts, np.arange(n_vocab)] = scale  # output[next(t), t]: one-hot t selects column t

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-scripted-llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(m) for m in MERGES])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.eye(n_vocab, n_embd, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", np.zeros((n_embd, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", np.zeros((n_ff, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((n_ff, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((n_embd, n_ff), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
