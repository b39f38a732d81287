"""The engine: the only code in llamarun that touches llama.cpp (through ctypes).

Two backends share its interface: llama.cpp (here) and the NumPy reference backend
(:mod:`llamarun.numpy_engine`).  ``Context``, ``SamplerChain`` and ``sample_rows`` hand a
NumPy model or context over to that backend, so the runtime builds either with the same calls;
:func:`open_model` loads a model on the backend a :class:`RuntimeConfig` names.

Every object here owns one native handle, frees it exactly once (``close()``,
``with``, or a finalizer) and raises :class:`~llamarun.errors.ClosedHandleError`
when used after close.  Engine objects are not thread-safe: one thread uses a
context and its samplers (``Context.abort`` is the exception).
"""

from .backends import BACKENDS, backend_status, open_model
from .batch import Batch
from .context import Context, default_threads
from .detok import Detokenizer
from .libc import eventfd_setter, native_heap_bytes, release_free_heap
from .model import Model, ModelInfo, vocab_special_texts
from .fastdist import DrawBuffer, native_draw
from .quantize import QUANT_TYPES, QuantizeProgress, QuantType, quant_type, quantize_gguf
from .sampler import SamplerChain, sample_rows
from .system import BackendDevice, backend_devices, max_devices, supports_gpu_offload, system_info
from .templates import apply_builtin_template, builtin_template_names
from .vocab import Vocab

__all__ = [
    "BACKENDS",
    "BackendDevice",
    "QUANT_TYPES",
    "QuantType",
    "QuantizeProgress",
    "Batch",
    "Context",
    "Detokenizer",
    "DrawBuffer",
    "Model",
    "ModelInfo",
    "SamplerChain",
    "Vocab",
    "apply_builtin_template",
    "backend_devices",
    "backend_status",
    "builtin_template_names",
    "default_threads",
    "eventfd_setter",
    "max_devices",
    "native_draw",
    "native_heap_bytes",
    "release_free_heap",
    "open_model",
    "quant_type",
    "quantize_gguf",
    "sample_rows",
    "supports_gpu_offload",
    "system_info",
    "vocab_special_texts",
]
