"""A loaded GGUF model: weights, metadata and vocabulary."""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Mapping

from ..errors import ModelLoadError
from ..gguf import check_gguf
from ._handle import NativeHandle
from ._lib import lib
from .vocab import Vocab

__all__ = ["Model", "ModelInfo", "vocab_special_texts"]

logger = logging.getLogger(__name__)

_META_BUF = 1 << 16  # longest metadata value we read back from llama.cpp


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model, read once at load time."""

    path: str
    architecture: str
    description: str
    n_params: int
    size_bytes: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    quantization: str
    chat_template: str | None
    metadata: Mapping[str, str]


def _model_params(n_gpu_layers: int, use_mmap: bool, vocab_only: bool = False):  # noqa: ANN202 - ctypes struct
    params = lib().llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    params.use_mmap = use_mmap
    params.vocab_only = vocab_only
    return params


def vocab_special_texts(path: str | os.PathLike[str]) -> frozenset[str]:
    """The texts of a GGUF's control and user-defined tokens, read without its weights (llama.cpp's
    vocab-only load: no tensors, no hyperparameters, so no :class:`Model`)."""
    path = str(Path(path))
    check_gguf(path)
    llama = lib()
    ptr = llama.llama_model_load_from_file(os.fsencode(path), _model_params(0, True, vocab_only=True))
    if not ptr:
        raise ModelLoadError(f"llama.cpp could not read the vocabulary of {path!r}", path=path)
    try:
        return Vocab(llama.llama_model_get_vocab(ptr), SimpleNamespace(ptr=ptr)).special_texts()  # type: ignore[arg-type]
    finally:
        llama.llama_model_free(ptr)


class Model(NativeHandle):
    """A GGUF model loaded by llama.cpp.

    The file is checked with :func:`llamarun.gguf.check_gguf` before
    llama.cpp sees it, so a missing, non-GGUF or malformed file raises a typed
    error naming the file and the process survives.
    """

    _kind = "model"

    def __init__(self, path: str | os.PathLike[str], *, n_gpu_layers: int = 0, use_mmap: bool = True) -> None:
        self.path = str(Path(path))
        check_gguf(self.path)
        llama = lib()
        ptr = llama.llama_model_load_from_file(os.fsencode(self.path), _model_params(n_gpu_layers, use_mmap))
        if not ptr:
            raise ModelLoadError(
                f"llama.cpp could not load {self.path!r}: the file is damaged or its architecture is "
                "not supported by this llama.cpp build (enable logging for 'llamarun.llama_cpp' for details)",
                path=self.path,
            )
        super().__init__(ptr, llama.llama_model_free)
        self.vocab = Vocab(llama.llama_model_get_vocab(ptr), self)
        self.info = self._read_info()
        logger.debug("loaded %s (%s, %d params)", self.path, self.info.architecture, self.info.n_params)

    # -- metadata -------------------------------------------------------

    def _meta_items(self) -> dict[str, str]:
        llama = lib()
        ptr = self.ptr
        buf = ctypes.create_string_buffer(_META_BUF)
        items: dict[str, str] = {}
        for i in range(llama.llama_model_meta_count(ptr)):
            if llama.llama_model_meta_key_by_index(ptr, i, buf, _META_BUF) < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            if llama.llama_model_meta_val_str_by_index(ptr, i, buf, _META_BUF) < 0:
                continue
            items[key] = buf.value.decode("utf-8", "replace")
        return items

    def _read_info(self) -> ModelInfo:
        llama = lib()
        ptr = self.ptr
        meta = self._meta_items()
        desc = ctypes.create_string_buffer(256)
        llama.llama_model_desc(ptr, desc, 256)
        template = llama.llama_model_chat_template(ptr, None)
        return ModelInfo(
            path=self.path,
            architecture=meta.get("general.architecture", "unknown"),
            description=desc.value.decode("utf-8", "replace"),
            n_params=int(llama.llama_model_n_params(ptr)),
            size_bytes=int(llama.llama_model_size(ptr)),
            n_ctx_train=int(llama.llama_model_n_ctx_train(ptr)),
            n_embd=int(llama.llama_model_n_embd(ptr)),
            n_layer=int(llama.llama_model_n_layer(ptr)),
            n_head=int(llama.llama_model_n_head(ptr)),
            n_head_kv=int(llama.llama_model_n_head_kv(ptr)),
            n_vocab=self.vocab.n_tokens,
            quantization=_quantization(desc.value.decode("utf-8", "replace")),
            chat_template=template.decode("utf-8", "replace") if template else None,
            metadata=MappingProxyType(meta),
        )

    def chat_template(self, name: str | None = None) -> str | None:
        """The model's chat template (or its named variant), if it has one."""
        raw = lib().llama_model_chat_template(self.ptr, name.encode() if name else None)
        return raw.decode("utf-8", "replace") if raw else None

    # -- text -------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        return self.vocab.detokenize(tokens, special=special)


def _quantization(description: str) -> str:
    """'llama 135M Q4_1' -> 'Q4_1' (llama.cpp's model description ends with the type)."""
    parts = description.split()
    return parts[-1] if parts else "unknown"
