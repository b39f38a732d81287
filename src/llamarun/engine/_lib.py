"""Access to llama.cpp through llama-cpp-python's low-level ctypes module.

Importing the shared library is deferred to the first call of :func:`lib`, so
``import llamarun`` does no work.  The backend is initialised once per process,
and llama.cpp's log output is routed to Python ``logging`` (logger
``llamarun.llama_cpp``), quiet unless that logger is enabled.

This llama.cpp is built with OpenMP (``llamarun version`` shows ``OPENMP = 1``): ggml's
threads meet at ``#pragma omp barrier`` hundreds of times per token, and libgomp spins
300,000 times at each before it sleeps.  When anything else runs on a core, the spinning
threads take the CPU the late one needs, and a 16-token request went from 0.2 s to 14-20 s
in some runs.
A short spin (:data:`SPIN_COUNT`) keeps the uncontended speed and lets the waiting threads
sleep quickly under contention.  libgomp reads its environment once, when it is loaded, so
the setting goes into ``os.environ`` just before the first load; a user's own
``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

__all__ = ["SPIN_COUNT", "lib", "llama_cpp_error", "log_listener", "native_logger", "openmp_env"]

SPIN_COUNT = "1000"  # libgomp's spins at a barrier before sleeping (its default is 300,000)

native_logger = logging.getLogger("llamarun.llama_cpp")

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class _LogBridge:
    """Keeps the ctypes callback alive, joins continuation lines, and hands each line to the
    listeners that :func:`log_listener` adds for a while (e.g. a quantization's progress)."""

    def __init__(self, module: ModuleType) -> None:
        self._last_level = logging.DEBUG
        self.listeners: list[Callable[[str], None]] = []
        self.callback = module.llama_log_callback(self._on_log)

    def _on_log(self, level: int, text: bytes | None, _user: Any) -> None:
        if level != 5:  # CONT continues the previous message at its level
            self._last_level = _LEVELS.get(level, logging.DEBUG)
        for listener in tuple(self.listeners):
            if text:
                listener(text.decode("utf-8", "replace"))
        # llama.cpp's INFO chatter is debug material for our users.
        py_level = logging.DEBUG if self._last_level <= logging.INFO else self._last_level
        if text and native_logger.isEnabledFor(py_level):
            native_logger.log(py_level, "%s", text.decode("utf-8", "replace").rstrip("\n"))


def openmp_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """Set the short OpenMP spin in ``environ`` unless the user chose a wait policy; return what applies."""
    if "GOMP_SPINCOUNT" not in environ and "OMP_WAIT_POLICY" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return {k: environ[k] for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in environ}


@functools.cache
def lib() -> ModuleType:
    """Return the initialised ``llama_cpp.llama_cpp`` module (once per process)."""
    openmp_env()  # before libgomp loads with llama.cpp: it reads its environment only then
    from llama_cpp import llama_cpp as module  # deferred: loads the shared library

    bridge = _LogBridge(module)
    module.llama_log_set(bridge.callback, ctypes.c_void_p(0))
    module.llama_backend_init()
    module._llamarun_log_bridge = bridge  # keep the callback alive with the module
    return module


@functools.cache
def llama_cpp_error() -> str | None:
    """None when llama.cpp loads in this process, else why not (it is loaded to find out, once)."""
    try:
        lib()
    except (ImportError, OSError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def log_listener(listener: Callable[[str], None]) -> Iterator[None]:
    """Call ``listener`` with every line llama.cpp logs (any thread, any level) inside the block."""
    bridge = lib()._llamarun_log_bridge
    bridge.listeners.append(listener)
    try:
        yield
    finally:
        bridge.listeners.remove(listener)
