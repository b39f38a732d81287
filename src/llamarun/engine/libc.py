"""The C library, for the few calls made into it directly (all ctypes stays in the engine).

The engine takes ``strlen``'s address as llama.cpp's abort callback
(:mod:`llamarun.engine.context`); the runtime's wake-up descriptor
(:mod:`llamarun.runtime.wakeup`) writes to an eventfd through :func:`eventfd_setter`;
:func:`native_heap_bytes` reads glibc's ``mallinfo2`` (the reliability tests' native-memory check);
:func:`release_free_heap` hands the C heap's free pages back to the system after a model is closed.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["eventfd_setter", "libc", "native_heap_bytes", "release_free_heap"]


def libc() -> ctypes.PyDLL:
    """The C library, loaded so that calls through it keep the GIL (``ctypes.PyDLL``).

    On POSIX systems it is the process's own global symbols (``dlopen(NULL)``), which hold the C
    library's: ``ctypes.util.find_library("c")`` would start ``ldconfig -p`` in a subprocess on
    every call (1.3 ms, and a fork of the whole process, each time a context is made).

    Its functions are short (``write`` to an eventfd) or are only taken by address
    (``strlen`` as llama.cpp's abort callback, called by llama.cpp's own threads), so
    keeping the GIL costs nothing and stops another thread from taking it mid-call.
    """
    return ctypes.PyDLL("msvcrt" if sys.platform == "win32" else None)


def eventfd_setter() -> Callable[[int], None]:
    """A function that adds one to an eventfd with ``write``, keeping the GIL (a PyDLL call).

    A closed descriptor (-1) makes the write fail with EBADF, which is ignored.
    """
    write = libc().write
    write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    write.restype = ctypes.c_ssize_t
    one = ctypes.c_uint64(1)

    def set_fd(fd: int) -> None:
        write(fd, ctypes.byref(one), 8)

    return set_fd


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def native_heap_bytes() -> int | None:
    """Bytes the C heap has handed out and not taken back (glibc ``mallinfo2``: ``uordblks`` in the
    arenas plus ``hblkhd`` in mmapped blocks); None where the C library has no ``mallinfo2``
    (not glibc, or glibc older than 2.33)."""
    try:
        call = libc().mallinfo2
    except AttributeError:
        return None
    call.argtypes = []
    call.restype = _Mallinfo2
    info = call()
    return int(info.uordblks + info.hblkhd)


def release_free_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``, every arena);
    True when some were. A closed model's buffers and its engine thread's arena otherwise stay in
    the process's resident memory until the allocator happens to reuse them. False, doing nothing,
    where the C library has no ``malloc_trim``."""
    try:  # a CDLL, not libc()'s PyDLL: walking every arena takes a while, and the GIL is let go meanwhile
        call = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return False
    call.argtypes = [ctypes.c_size_t]
    call.restype = ctypes.c_int
    return bool(call(0))
