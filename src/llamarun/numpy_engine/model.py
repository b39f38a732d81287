"""A GGUF model loaded by the NumPy backend: configuration, float32 weights, vocabulary."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..engine.model import ModelInfo
from ..errors import ClosedHandleError
from ..gguf import check_gguf
from ..types import ContextOptions, SamplingParams
from .forward import Forward
from .vocab import Vocab, read_vocab_data
from .weights import (
    LlamaConfig,
    open_reader,
    read_config,
    read_weights,
    scalar_metadata,
)

__all__ = ["Model"]

logger = logging.getLogger(__name__)

_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
               11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
               17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


class Model:
    """A llama-architecture GGUF run by NumPy (the engine Model's attributes and methods).

    The file is checked with :func:`llamarun.gguf.check_gguf` first, so a malformed file
    raises the same typed errors as with llama.cpp.  Weights are dequantized to float32 once,
    here; :attr:`f32_bytes` says how much memory that takes.  ``emulate_llama_cpp`` rounds
    activations, keys, values and attention weights as llama.cpp's CPU kernels do
    (:mod:`.numerics`); without it the whole pass is plain float32.
    """

    backend = "numpy"

    def __init__(self, path: str | os.PathLike[str], *, n_gpu_layers: int = 0, use_mmap: bool = True,
                 available_memory: Callable[[], int] | None = None, emulate_llama_cpp: bool = False) -> None:
        self.path = str(Path(path))
        info = check_gguf(self.path)
        reader = open_reader(self.path)
        self.config: LlamaConfig = read_config(reader, self.path)
        self.vocab = Vocab(read_vocab_data(reader, self.path), self.path)
        self.f32_bytes = info.float32_bytes  # what show and hw --model state for this backend
        self._metadata = scalar_metadata(reader)
        self._templates = {key: str(field.contents()) for key, field in reader.fields.items()
                           if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")}
        weights = read_weights(reader, self.config, self.path, need=self.f32_bytes, available=available_memory,
                               emulate=emulate_llama_cpp)
        self._forward: Forward | None = Forward(self.config, weights, emulate=emulate_llama_cpp)
        self.info = self._info(reader)
        del reader  # the weights are copies: the mapping can go
        logger.debug("numpy backend loaded %s (%d params, %d MiB as float32)", self.path, self.info.n_params,
                     self.f32_bytes >> 20)

    def _info(self, reader: Any) -> ModelInfo:
        c, meta = self.config, self._metadata
        n_params = sum(int(t.n_elements) for t in reader.tensors)
        quant = _FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown")
        size = f"{n_params / 1e9:.1f}B" if n_params >= 1e9 else f"{round(n_params / 1e6)}M"
        return ModelInfo(
            path=self.path, architecture=c.architecture, description=f"{c.architecture} {size} {quant}",
            n_params=n_params, size_bytes=sum(int(t.n_bytes) for t in reader.tensors), n_ctx_train=c.n_ctx_train,
            n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head, n_head_kv=c.n_head_kv, n_vocab=self.vocab.n_tokens,
            quantization=quant, chat_template=self._templates.get("tokenizer.chat_template"),
            metadata=MappingProxyType(dict(meta)))

    @property
    def forward(self) -> Forward:
        if self._forward is None:
            raise ClosedHandleError("this model is closed; create a new one")
        return self._forward

    @property
    def pooling_type(self) -> int:
        try:
            return int(self._metadata.get(f"{self.config.architecture}.pooling_type", 0))
        except ValueError:
            return 0

    @property
    def closed(self) -> bool:
        return self._forward is None

    def close(self) -> None:
        """Drop the weights (contexts still open keep their reference until they close)."""
        self._forward = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the engine's Context and SamplerChain hand over to this backend ----------

    def new_context(self, options: ContextOptions | None = None) -> Any:
        from .context import Context

        return Context(self, options)

    def new_sampler(self, params: SamplingParams | None = None) -> Any:
        from .sampler import SamplerChain

        return SamplerChain(self, params)

    # -- text ---------------------------------------------------------------------

    def chat_template(self, name: str | None = None) -> str | None:
        return self._templates.get(f"tokenizer.chat_template.{name}" if name else "tokenizer.chat_template")

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        for token in tokens:
            self.vocab.check_token(token)
        return self.vocab.detokenize(tokens, special=special)
