"""What :func:`llamarun.gguf.check_gguf` reads from a GGUF header: the file's facts, its tensors, its arrays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArraySummary", "GGUFInfo", "TensorInfo", "format_count"]


@dataclass(frozen=True)
class ArraySummary:
    """An array value: its element type, length and first few elements."""

    element_type: str
    length: int
    head: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "element_type": self.element_type, "length": self.length, "head": list(self.head)}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    type_name: str
    offset: int  # relative to the start of the data section
    n_bytes: int


@dataclass(frozen=True)
class GGUFInfo:
    """Facts about a well-formed GGUF file, read from its header only."""

    path: str
    file_size: int
    version: int
    alignment: int
    data_offset: int
    tensor_count: int
    parameter_count: int
    architecture: str | None
    name: str | None
    file_type: int | None
    quantization: str
    context_length: int | None
    chat_template: str | None
    license: str | None
    metadata: Mapping[str, Any] = field(repr=False)
    tensors: tuple[TensorInfo, ...] = field(repr=False, default=())

    @property
    def parameters(self) -> str:
        """Parameter count for people: ``135M``, ``1.2B``."""
        return format_count(self.parameter_count)

    @property
    def float32_bytes(self) -> int:
        """Memory the NumPy backend holds the weights in (every tensor dequantized to float32)."""
        return self.parameter_count * 4

    def summary(self) -> dict[str, Any]:
        """The JSON-able facts a store manifest records."""
        return {
            "architecture": self.architecture, "name": self.name, "parameters": self.parameters,
            "parameter_count": self.parameter_count, "quantization": self.quantization,
            "file_type": self.file_type, "context_length": self.context_length, "license": self.license,
            "gguf_version": self.version, "tensor_count": self.tensor_count,
        }

    def metadata_json(self) -> dict[str, Any]:
        """All key/values, JSON-able (arrays as :class:`ArraySummary` dicts)."""
        return {k: (v.to_json() if isinstance(v, ArraySummary) else v) for k, v in self.metadata.items()}


def format_count(n: int) -> str:
    """``134515008`` -> ``135M``; ``0`` -> ``0``."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)
