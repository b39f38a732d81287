"""A llama.cpp context: KV memory for one or more sequences, and decode."""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ContextCreationError, DecodeAbortedError, DecodeError, KVCacheFullError
from ..types import ContextOptions
from ._handle import NativeHandle
from ._lib import lib
from .libc import libc
from .batch import Batch
from .model import Model

__all__ = ["Context", "default_threads"]

logger = logging.getLogger(__name__)

# llama_flash_attn_type: AUTO = -1, DISABLED = 0, ENABLED = 1
_FLASH = {None: -1, False: 0, True: 1}
# KV_CACHE_TYPES -> ggml_type
_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}


def default_threads() -> int:
    """Threads for llama.cpp: the cores this process may use (llama.cpp's own default is similar)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _AbortFlag:
    """A one-byte flag that llama.cpp polls during decode, without the GIL.

    The callback is the C library's ``strlen`` over a two-byte buffer
    ``[flag, 0]``: it returns 1 (true: abort) when the flag is set and 0
    otherwise.  A Python callback would be called by a compute thread after
    every graph node and would have to take the GIL each time; this costs
    nothing and lets any thread abort a long decode by writing one byte.
    """

    def __init__(self, callback_type: Any) -> None:
        self._buf = ctypes.create_string_buffer(2)
        address = ctypes.cast(libc().strlen, ctypes.c_void_p).value
        self.callback = callback_type(address)
        self.data = ctypes.cast(self._buf, ctypes.c_void_p)

    def set(self) -> None:
        self._buf[0] = b"\x01"

    def clear(self) -> None:
        self._buf[0] = b"\x00"

    @property
    def is_set(self) -> bool:
        return self._buf[0] != b"\x00"


def _context_params(options: ContextOptions, abort: _AbortFlag) -> Any:
    params = lib().llama_context_default_params()
    threads = options.n_threads or default_threads()
    params.n_ctx = options.n_ctx
    params.n_batch = options.n_batch
    params.n_ubatch = min(options.n_ubatch, options.n_batch)
    params.n_seq_max = options.n_seq_max
    params.n_threads = threads
    params.n_threads_batch = options.n_threads_batch or threads
    params.flash_attn_type = _FLASH[options.flash_attn]
    params.type_k = _GGML_TYPES[options.type_k]
    params.type_v = _GGML_TYPES[options.type_v]
    params.embeddings = options.embeddings
    # unified: one KV pool shared by all sequences; otherwise one stream of n_ctx/n_seq_max per sequence
    params.kv_unified = options.kv_unified
    params.no_perf = True
    params.abort_callback = abort.callback
    params.abort_callback_data = abort.data
    return params


class Context(NativeHandle):
    """KV memory plus compute state for decoding; keeps its :class:`Model` alive.

    Only one thread may use a context at a time (the runtime's engine thread);
    :meth:`abort` is the exception: any thread may call it to interrupt the
    decode in progress.
    """

    _kind = "context"

    def __new__(cls, model: Any, options: ContextOptions | None = None) -> Any:
        if not isinstance(model, Model):  # another backend's model (the NumPy one) makes its own context
            return model.new_context(options)
        return super().__new__(cls)

    def __init__(self, model: Model, options: ContextOptions | None = None) -> None:
        options = options or ContextOptions()
        llama = lib()
        self._abort = _AbortFlag(llama.ggml_abort_callback)
        params = _context_params(options, self._abort)
        ptr = llama.llama_init_from_model(model.ptr, params)
        if not ptr:
            kv = "" if (options.type_k, options.type_v) == ("f16", "f16") else (
                f" (KV cache {options.type_k}/{options.type_v}: a quantized V cache needs flash attention, "
                "which this backend may not have; try cache type f16)")
            raise ContextCreationError(
                f"llama.cpp could not create a context of {options.n_ctx or 'default'} tokens "
                f"for {model.path!r}: try a smaller n_ctx or fewer parallel sequences{kv}"
            )
        super().__init__(ptr, llama.llama_free, keep=(model,))
        self.model = model
        self.options = options
        self.n_ctx: int = int(llama.llama_n_ctx(ptr))
        self._views: dict[tuple[int, int], np.ndarray] = {}
        self.n_batch: int = int(llama.llama_n_batch(ptr))
        self.n_ubatch: int = int(llama.llama_n_ubatch(ptr))
        self.n_seq_max: int = int(llama.llama_n_seq_max(ptr))
        self.n_threads: int = params.n_threads
        self._memory = llama.llama_get_memory(ptr)


    # -- decode -------------------------------------------------------------

    def decode(self, batch: Batch) -> None:
        """Run the model over ``batch``; raises a typed error on failure."""
        ptr = self.ptr  # raises once closed
        if batch.n_tokens == 0:
            return
        if batch.n_tokens > self.n_batch:  # llama.cpp would abort the process
            raise DecodeError(f"batch of {batch.n_tokens} tokens exceeds n_batch {self.n_batch}", code=-1)
        code = lib().llama_decode(ptr, batch.struct)
        if code == 0:
            return
        if code == 1:
            raise KVCacheFullError("no KV cache slot for this batch: free sequences or use a larger context", code=1)
        if code == 2:
            self._abort.clear()
            raise DecodeAbortedError("decode aborted", code=2)
        if code == -1:
            raise DecodeError("llama.cpp rejected the batch as invalid", code=-1)
        raise DecodeError(f"llama_decode failed with code {code}", code=code)

    def synchronize(self) -> None:
        """Wait until the last decode's work is done (a GPU backend may return before it is)."""
        lib().llama_synchronize(self.ptr)

    def abort(self) -> None:
        """Interrupt the decode in progress (thread-safe); it raises DecodeAbortedError."""
        self._abort.set()

    def clear_abort(self) -> None:
        self._abort.clear()

    def logits(self, index: int) -> np.ndarray:
        """Logits of the token at batch ``index`` (a copy, shape ``[n_vocab]``)."""
        return self.logits_view(index).copy()

    def logits_view(self, index: int) -> np.ndarray:
        """Logits of the token at batch ``index`` without a copy: valid only until the next decode."""
        return self._floats(self.logits_address(index), self.model.vocab.n_tokens)

    def logits_rows(self, indices: Sequence[int]) -> np.ndarray:
        """Logits of the tokens at batch ``indices`` as ``[len(indices), n_vocab]``.

        A view when llama.cpp stores them as consecutive rows (as it does for
        a batch's outputs in order), else a copy; valid only until the next decode.
        """
        n = self.model.vocab.n_tokens
        addresses = [self.logits_address(i) for i in indices]
        row = n * ctypes.sizeof(ctypes.c_float)
        if all(a == addresses[0] + r * row for r, a in enumerate(addresses)):
            return self._floats(addresses[0], n * len(addresses)).reshape(len(addresses), n)
        return np.stack([self._floats(a, n) for a in addresses])

    def logits_address(self, index: int) -> int:
        """Address of the ``n_vocab`` float32 logits of the token at batch ``index`` (valid until the next decode)."""
        ptr = lib().llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise DecodeError(f"no logits for batch index {index}")
        return ctypes.addressof(ptr.contents)

    def _floats(self, address: int, count: int) -> np.ndarray:
        """``count`` floats at ``address`` (inside llama.cpp's logits buffer, as it just said) as an array.

        Views are kept by address: the buffer stays put from step to step, and
        building a view costs more than the draw's arithmetic right after a decode.
        If llama.cpp moves the buffer, new addresses get new views.
        """
        key = (address, count)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= 64:
                self._views.clear()
            view = self._views[key] = np.frombuffer((ctypes.c_float * count).from_address(address), dtype=np.float32)
        return view

    @property
    def pooling_type(self) -> int:
        """llama.cpp's pooling of this context (``LLAMA_POOLING_TYPE_*``; 4 is a reranker's score)."""
        return int(lib().llama_pooling_type(self.ptr))

    def embeddings(self, seq_id: int) -> np.ndarray:
        """Pooled output of a sequence (context created with embeddings=True): the model's output
        width (``n_embd_out``, which a GGUF may set apart from ``n_embd``), or a reranker's
        ``n_cls_out`` scores when the pooling is rank; exactly what llama.cpp stores, no more."""
        llama = lib()
        ptr = llama.llama_get_embeddings_seq(self.ptr, seq_id)
        if not ptr:
            ptr = llama.llama_get_embeddings_ith(self.ptr, -1)
        if not ptr:
            raise DecodeError("no embeddings: create the context with embeddings=True")
        if self.pooling_type == llama.LLAMA_POOLING_TYPE_RANK:
            size = max(1, int(llama.llama_model_n_cls_out(self.model.ptr)))
        else:
            size = int(llama.llama_model_n_embd_out(self.model.ptr))
        return np.ctypeslib.as_array(ptr, shape=(size,)).copy()

    # -- KV memory per sequence ----------------------------------------------

    def _mem(self) -> Any:
        self.ptr  # raises once closed  # noqa: B018
        return self._memory

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove positions [p0, p1) of a sequence (-1 = open end; seq -1 = all)."""
        return bool(lib().llama_memory_seq_rm(self._mem(), seq_id, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Share positions [p0, p1) of ``src`` with ``dst`` (no copy in unified KV)."""
        lib().llama_memory_seq_cp(self._mem(), src, dst, p0, p1)

    def seq_pos_max(self, seq_id: int) -> int:
        """Largest position stored for a sequence, -1 when it is empty."""
        return int(lib().llama_memory_seq_pos_max(self._mem(), seq_id))

    def clear_memory(self) -> None:
        lib().llama_memory_clear(self._mem(), True)

    # -- per-sequence state (llama_state_seq_*): a sequence's KV as bytes ------------------

    def seq_state_size(self, seq_id: int) -> int:
        """Bytes :meth:`seq_state_get` would return for a sequence."""
        return int(lib().llama_state_seq_get_size(self.ptr, seq_id))

    def seq_state_get(self, seq_id: int) -> bytes:
        """The KV state of one sequence (its cells and positions) as bytes; empty for an empty sequence."""
        size = self.seq_state_size(seq_id)
        if size <= 0:
            return b""
        buffer = bytearray(size)
        view = (ctypes.c_uint8 * size).from_buffer(buffer)
        written = int(lib().llama_state_seq_get_data(self.ptr, view, size, seq_id))
        del view  # release the export before resizing or handing the buffer on
        if written < size:
            del buffer[written:]
        return bytes(buffer) if written else b""

    def seq_state_set(self, seq_id: int, data: bytes) -> bool:
        """Replace a sequence's KV by a state from :meth:`seq_state_get` (this model, same KV layout).

        False when llama.cpp refuses it (no room, another layout); the sequence is then empty.
        """
        self.seq_rm(seq_id, -1, -1)
        if not data:
            return True
        pointer = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_uint8))
        read = int(lib().llama_state_seq_set_data(self.ptr, pointer, len(data), seq_id))
        if read == 0:
            self.seq_rm(seq_id, -1, -1)
        return read != 0
