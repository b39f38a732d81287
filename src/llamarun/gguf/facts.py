"""The facts of a GGUF model that decide how much memory it needs.

They come from :func:`llamarun.gguf.check_gguf`, which parses only the header
(metadata and tensor table) with bounds checks, in milliseconds where
``gguf.GGUFReader`` takes seconds; tensor data is never read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GGUFFormatError
from .check import check_gguf
from .info import ArraySummary

__all__ = ["ModelFacts", "read_model_facts"]

_MAX_LAYERS = 4096  # far above any real model; bounds what a hostile header can make us allocate


@dataclass(frozen=True)
class ModelFacts:
    """Sizes of a model that memory estimates need (all sizes in bytes)."""

    path: str
    architecture: str
    name: str
    file_type: str
    file_size: int
    weights_bytes: int  # all tensor data
    n_params: int
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: tuple[int, ...]  # per layer (GQA models may vary)
    n_embd_head_k: int
    n_embd_head_v: int
    n_ctx_train: int
    n_vocab: int
    layer_bytes: tuple[int, ...]  # weights of each repeating block
    output_bytes: int  # output head (llama.cpp's last offloadable "layer")
    input_bytes: int  # token embeddings (always kept on the CPU)

    @property
    def n_embd_k_gqa(self) -> int:
        return self.n_embd_head_k * max(self.n_head_kv, default=0)


def _int(value: Any, key: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GGUFFormatError(f"{path!r}: metadata {key!r} must be a non-negative integer, got {value!r}", path=path)
    return value


def _ints(value: Any, n_layer: int, key: str, path: str) -> tuple[int, ...]:
    """A per-layer hyperparameter: one number, or an array (check_gguf keeps its first elements)."""
    if not isinstance(value, ArraySummary):
        return (_int(value, key, path),) * n_layer
    head = [_int(v, key, path) for v in value.head[:n_layer]] or [0]
    n = min(value.length, n_layer)
    return tuple(head + [max(head)] * (n - len(head)))  # assume the rest are no larger


def _length(value: Any) -> int:
    return value.length if isinstance(value, ArraySummary) else 0


def read_model_facts(path: str | os.PathLike[str]) -> ModelFacts:
    """Read the memory-relevant facts of a GGUF file; raises GGUFFormatError if malformed."""
    info = check_gguf(path)  # bounded header parse; typed errors naming the file
    meta = info.metadata
    arch = info.architecture or "unknown"

    def get(key: str, default: Any = 0) -> Any:
        return meta.get(f"{arch}.{key}", default)

    def number(key: str, default: int = 0) -> int:
        return _int(get(key, default), f"{arch}.{key}", info.path)

    def per_layer(key: str, default: Any = 0) -> tuple[int, ...]:
        return _ints(get(key, default), n_layer, f"{arch}.{key}", info.path)

    n_layer = number("block_count")
    if n_layer > _MAX_LAYERS:
        raise GGUFFormatError(f"{info.path!r} declares {n_layer} layers", path=info.path)
    n_head = max(per_layer("attention.head_count"), default=0)
    n_head_kv = per_layer("attention.head_count_kv", get("attention.head_count"))
    n_embd = number("embedding_length")
    head_dim = n_embd // n_head if n_head else 0

    layer_bytes = [0] * n_layer
    output = inputs = 0
    for tensor in info.tensors:
        parts = tensor.name.split(".")
        if parts[0] == "blk" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < n_layer:
            layer_bytes[int(parts[1])] += tensor.n_bytes
        elif parts[0] in ("output", "output_norm"):
            output += tensor.n_bytes
        elif parts[0] == "token_embd":
            inputs += tensor.n_bytes
    if "output.weight" not in {t.name for t in info.tensors}:
        output += inputs  # tied embeddings: the output head reuses token_embd
    return ModelFacts(
        path=info.path,
        architecture=arch,
        name=info.name or Path(info.path).name,
        file_type=info.quantization,
        file_size=info.file_size,
        weights_bytes=sum(t.n_bytes for t in info.tensors),
        n_params=info.parameter_count,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=max(per_layer("feed_forward_length"), default=0),
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_embd_head_k=number("attention.key_length", head_dim),
        n_embd_head_v=number("attention.value_length", head_dim),
        n_ctx_train=info.context_length or 0,
        n_vocab=number("vocab_size") or _length(meta.get("tokenizer.ggml.tokens")),
        layer_bytes=tuple(layer_bytes),
        output_bytes=output,
        input_bytes=inputs,
    )
