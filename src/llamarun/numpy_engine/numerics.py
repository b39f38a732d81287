"""llama.cpp's CPU numerics where they change results: activations rounded as its dot products see them.

ggml's CPU matmul with a quantized weight first quantizes the activations (to Q8_0 blocks of
32 for Q4_0/Q5_0/Q8_0 weights, Q8_1 for Q4_1/Q5_1, Q8_K blocks of 256 for the K-quants, to
F16 or BF16 for those weights) and takes integer dot products.  Running the same product in
float32 on the dequantized weights is the same sum up to that rounding of the activations, so
a :class:`Projection` rounds them the same way first: the NumPy backend then computes what
llama.cpp computes (to float32 summation order), which makes it a sharp oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["Projection", "activation_rounding", "round_f16"]

Rounding = Callable[[np.ndarray], np.ndarray]


def round_f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # round to nearest even, as ggml
    return rounded.astype(np.uint32).view(np.float32)


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
    return x.reshape(*x.shape[:-1], x.shape[-1] // size, size)


def _round_q8_0(x: np.ndarray) -> np.ndarray:
    """Q8_0/Q8_1 activations: blocks of 32, scale amax/127 stored as f16, values rounded to nearest."""
    b = _blocks(x, 32)
    d = np.abs(b).max(axis=-1, keepdims=True) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d > 0)
    q = np.rint(b * inv)
    return (q * round_f16(d)).reshape(x.shape)


def _round_q8_k(x: np.ndarray) -> np.ndarray:
    """Q8_K activations: blocks of 256, the largest magnitude maps to -127, scale kept in f32."""
    b = _blocks(x, 256)
    at = np.abs(b).argmax(axis=-1)[..., None]
    peak = np.take_along_axis(b, at, axis=-1)
    iscale = np.divide(np.float32(-127), peak, out=np.zeros_like(peak), where=peak != 0)
    q = np.minimum(np.rint(b * iscale), 127)
    scale = np.divide(np.float32(1), iscale, out=np.zeros_like(iscale), where=iscale != 0)
    return (q * scale).reshape(x.shape)


_BY_TYPE: dict[str, tuple[Rounding, int]] = {
    "Q4_0": (_round_q8_0, 32), "Q4_1": (_round_q8_0, 32), "Q5_0": (_round_q8_0, 32), "Q5_1": (_round_q8_0, 32),
    "Q8_0": (_round_q8_0, 32), "Q2_K": (_round_q8_k, 256), "Q3_K": (_round_q8_k, 256),
    "Q4_K": (_round_q8_k, 256), "Q5_K": (_round_q8_k, 256), "Q6_K": (_round_q8_k, 256),
    "F16": (round_f16, 1), "BF16": (_round_bf16, 1),
}


def activation_rounding(type_name: str, n_in: int) -> Rounding | None:
    """How llama.cpp's CPU rounds the activations a weight of this GGUF type multiplies (None: not at all)."""
    entry = _BY_TYPE.get(type_name)
    if entry is None or n_in % entry[1]:
        return None
    return entry[0]


class Projection:
    """One or more weight matrices ``[out, in]`` that read the same input, applied as few matmuls as
    their activation roundings allow (one when they share it: Q, K and V of a layer, gate and up)."""

    def __init__(self, parts: Sequence[tuple[np.ndarray, str]], *, emulate: bool = True) -> None:
        groups: dict[str, list[np.ndarray]] = {}
        for matrix, type_name in parts:
            key = type_name if emulate and activation_rounding(type_name, matrix.shape[1]) else "F32"
            groups.setdefault(key, []).append(matrix)
        self.n_out = sum(m.shape[0] for m, _ in parts)
        self.n_in = parts[0][0].shape[1]
        order = [type_name if emulate and activation_rounding(type_name, m.shape[1]) else "F32" for m, type_name in parts]
        self._single = len(groups) == 1
        # one [out, in] matrix per rounding (a part as it is when alone); with several, columns come
        # back in the parts' order
        self._mats = [(activation_rounding(key, self.n_in) if key != "F32" else None,
                       ms[0] if len(ms) == 1 else np.concatenate(ms)) for key, ms in groups.items()]
        self._order = None if self._single else _column_order(parts, order, list(groups))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = [(rounding(x) if rounding else x) @ mat.T for rounding, mat in self._mats]
        if self._single:
            return outs[0]
        return np.concatenate(outs, axis=-1)[..., self._order]

    @property
    def weight_bytes(self) -> int:
        return sum(m.nbytes for _, m in self._mats)


def _column_order(parts: Sequence[tuple[np.ndarray, str]], keys: list[str], group_keys: list[str]) -> np.ndarray:
    """Where each output column of the parts (in order) sits in the groups' concatenated outputs."""
    offsets, at = {}, 0
    for key in group_keys:
        offsets[key] = at
        at += sum(m.shape[0] for (m, _), k in zip(parts, keys, strict=True) if k == key)
    cols = []
    for (matrix, _), key in zip(parts, keys, strict=True):
        cols.append(np.arange(offsets[key], offsets[key] + matrix.shape[0]))
        offsets[key] += matrix.shape[0]
    return np.concatenate(cols)
