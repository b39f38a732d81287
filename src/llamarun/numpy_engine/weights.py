"""A llama-architecture GGUF read with the ``gguf`` package: configuration and f32 weights.

The file is memory-mapped by :class:`gguf.GGUFReader`; each tensor is dequantized once, at
load, with ``gguf.quants.dequantize`` (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K and
the other types it knows) into float32 arrays in numpy's row-major order (``[out, in]`` for a
projection).  The projections of a layer that read the same input are joined into one
matrix (Q, K and V; gate and up) so that a step is one matmul per projection group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InsufficientMemoryError, ModelLoadError
from .numerics import Projection

__all__ = ["LayerWeights", "LlamaConfig", "ModelWeights", "open_reader", "read_config",
           "read_weights", "scalar_metadata"]

SUPPORTED_ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class LlamaConfig:
    """The hyperparameters the forward pass needs, from the GGUF's key/values."""

    architecture: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head_dim: int
    rope_dim: int
    rope_base: float
    rope_linear_scale: float  # positions are divided by this (1.0: no scaling)
    rms_eps: float
    n_ctx_train: int
    tied_embeddings: bool


@dataclass(frozen=True)
class LayerWeights:
    attn_norm: np.ndarray  # [n_embd]
    qkv: Projection        # n_embd -> (n_head + 2 n_head_kv) head_dim
    out: Projection        # n_head head_dim -> n_embd
    ffn_norm: np.ndarray   # [n_embd]
    gate_up: Projection    # n_embd -> 2 n_ff
    down: Projection       # n_ff -> n_embd


@dataclass(frozen=True)
class ModelWeights:
    token_embd: np.ndarray   # [n_vocab, n_embd]
    output_norm: np.ndarray  # [n_embd]
    output: Projection       # n_embd -> n_vocab (the embedding itself when tied)
    layers: tuple[LayerWeights, ...]
    rope_freqs: np.ndarray | None  # llama-3 style frequency factors [rope_dim / 2], or None


def open_reader(path: str) -> Any:
    """A memory-mapped :class:`gguf.GGUFReader`; a file it cannot parse is a :class:`ModelLoadError`."""
    import gguf

    try:
        return gguf.GGUFReader(path, "r")
    except (ValueError, KeyError, IndexError, OSError, TypeError) as exc:
        raise ModelLoadError(f"the NumPy backend could not read {path!r}: {exc}", path=path) from exc


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.get_field(key)
    if field is None:
        return default
    return field.contents()


def scalar_metadata(reader: Any) -> dict[str, str]:
    """Every scalar key/value as text, as llama.cpp shows them (arrays left out)."""
    import gguf

    items: dict[str, str] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or not field.types or field.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        value = field.contents()
        if isinstance(value, bool):
            items[key] = "true" if value else "false"
        elif isinstance(value, float):
            items[key] = f"{value:f}"
        else:
            items[key] = str(value)
    return items


def read_config(reader: Any, path: str) -> LlamaConfig:
    """The model's configuration; an architecture or RoPE scaling we do not implement is refused."""
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(f"the NumPy backend runs the {', '.join(SUPPORTED_ARCHITECTURES)} architecture; "
                             f"{path!r} is {arch!r}: use the llama.cpp backend", path=path)

    def need(name: str) -> Any:
        value = _field(reader, f"{arch}.{name}")
        if value is None:
            raise ModelLoadError(f"{path!r} has no {arch}.{name}", path=path)
        return value

    n_embd, n_head = int(need("embedding_length")), int(need("attention.head_count"))
    head_dim = int(_field(reader, f"{arch}.attention.key_length", n_embd // n_head))
    scaling = _field(reader, f"{arch}.rope.scaling.type", "none")
    factor = float(_field(reader, f"{arch}.rope.scaling.factor", 1.0) or 1.0)
    if scaling not in ("none", "linear") and factor != 1.0:
        raise ModelLoadError(f"the NumPy backend does not implement {scaling!r} RoPE scaling ({path!r})", path=path)
    tokens = reader.get_field("tokenizer.ggml.tokens")
    names = {t.name for t in reader.tensors}
    return LlamaConfig(
        architecture=arch,
        n_vocab=len(tokens.data) if tokens is not None else 0,
        n_embd=n_embd,
        n_layer=int(need("block_count")),
        n_head=n_head,
        n_head_kv=int(_field(reader, f"{arch}.attention.head_count_kv", n_head)),
        n_ff=int(need("feed_forward_length")),
        head_dim=head_dim,
        rope_dim=int(_field(reader, f"{arch}.rope.dimension_count", head_dim)),
        rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        rope_linear_scale=factor if scaling == "linear" else 1.0,
        rms_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        n_ctx_train=int(_field(reader, f"{arch}.context_length", 2048)),
        tied_embeddings="output.weight" not in names,
    )


def _check_memory(need: int, path: str, available: Callable[[], int] | None) -> None:
    if available is None:
        import psutil

        def available() -> int:
            return int(psutil.virtual_memory().available)

    have = available()
    if need > have:
        raise InsufficientMemoryError(
            f"the NumPy backend holds {path!r} as float32: {need / 2**30:.2f} GiB, but only "
            f"{have / 2**30:.2f} GiB of memory is available; use the llama.cpp backend or a smaller model")


def read_weights(reader: Any, config: LlamaConfig, path: str, *, need: int,
                 available: Callable[[], int] | None = None,
                 emulate: bool = True) -> ModelWeights:
    """Dequantize every tensor the forward pass uses (refused when float32 copies would not fit).

    ``emulate`` rounds each projection's input as llama.cpp's CPU kernels do for its weight
    type (see :mod:`.numerics`); without it every product is plain float32.
    """
    import gguf

    _check_memory(need, path, available)
    tensors = {t.name: t for t in reader.tensors}

    def load(name: str, shape: tuple[int, ...]) -> np.ndarray:
        tensor = tensors.get(name)
        if tensor is None:
            raise ModelLoadError(f"{path!r} has no tensor {name!r}", path=path)
        try:
            array = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)  # plain view: memmap slicing is slow
        except (NotImplementedError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"the NumPy backend cannot dequantize {name!r} "
                                 f"({tensor.tensor_type.name}) in {path!r}: {exc}", path=path) from exc
        array = np.asarray(array, dtype=np.float32)
        if array.size != math.prod(shape):
            raise ModelLoadError(f"tensor {name!r} in {path!r} has shape {tuple(array.shape)}, expected {shape}",
                                 path=path)
        return np.ascontiguousarray(array.reshape(shape))

    c = config
    q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim

    def part(name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
        return load(name, shape), tensors[name].tensor_type.name

    layers = []
    for i in range(c.n_layer):
        p = f"blk.{i}."
        layers.append(LayerWeights(
            attn_norm=load(p + "attn_norm.weight", (c.n_embd,)),
            qkv=Projection([part(p + "attn_q.weight", (q_dim, c.n_embd)), part(p + "attn_k.weight", (kv_dim, c.n_embd)),
                            part(p + "attn_v.weight", (kv_dim, c.n_embd))], emulate=emulate),
            out=Projection([part(p + "attn_output.weight", (c.n_embd, q_dim))], emulate=emulate),
            ffn_norm=load(p + "ffn_norm.weight", (c.n_embd,)),
            gate_up=Projection([part(p + "ffn_gate.weight", (c.n_ff, c.n_embd)),
                                part(p + "ffn_up.weight", (c.n_ff, c.n_embd))], emulate=emulate),
            down=Projection([part(p + "ffn_down.weight", (c.n_embd, c.n_ff))], emulate=emulate)))
    embd = part("token_embd.weight", (c.n_vocab, c.n_embd))
    output = embd if c.tied_embeddings else part("output.weight", (c.n_vocab, c.n_embd))
    freqs = load("rope_freqs.weight", (c.rope_dim // 2,)) if "rope_freqs.weight" in tensors else None
    return ModelWeights(embd[0], load("output_norm.weight", (c.n_embd,)), Projection([output], emulate=emulate),
                        tuple(layers), freqs)
