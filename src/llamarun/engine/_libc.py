"""The C library, for the few calls the engine makes into it directly."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["libc"]


def libc() -> ctypes.PyDLL:
    """The C library, loaded so that calls through it keep the GIL (``ctypes.PyDLL``).

    Its functions are short (``write`` to an eventfd) or are only taken by address
    (``strlen`` as llama.cpp's abort callback, called by llama.cpp's own threads), so
    keeping the GIL costs nothing and stops another thread from taking it mid-call.
    """
    return ctypes.PyDLL("msvcrt" if sys.platform == "win32" else ctypes.util.find_library("c"))
