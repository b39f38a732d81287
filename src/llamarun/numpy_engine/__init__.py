"""The NumPy reference backend: the llama architecture written from scratch in NumPy.

It needs no C++ toolchain and no llama.cpp: GGUF reading and dequantization through the
``gguf`` package, a tokenizer that gives llama.cpp's token ids, the forward pass with a KV
cache per sequence, and sampler chains.  Its objects have the methods of the llama.cpp
engine's (:mod:`llamarun.engine`), so the runtime, the store and every frontend run on it
unchanged: ``llamarun.load(name, backend="numpy")``, ``llamarun run|serve --backend numpy``.
It is also an independent oracle for the llama.cpp engine.

No ctypes here, and nothing that loads llama.cpp.
"""

from .batch import Batch
from .context import Context
from .model import Model
from .sampler import SamplerChain, sample_rows
from .vocab import Vocab
from .weights import LlamaConfig

__all__ = ["Batch", "Context", "LlamaConfig", "Model", "SamplerChain", "Vocab", "sample_rows"]
