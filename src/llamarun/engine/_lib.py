"""Access to llama.cpp through llama-cpp-python's low-level ctypes module.

Importing the shared library is deferred to the first call of :func:`lib`, so
``import llamarun`` does no work.  The backend is initialised once per process,
and llama.cpp's log output is routed to Python ``logging`` (logger
``llamarun.llama_cpp``), quiet unless that logger is enabled.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from types import ModuleType
from typing import Any

__all__ = ["lib", "native_logger"]

native_logger = logging.getLogger("llamarun.llama_cpp")

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class _LogBridge:
    """Keeps the ctypes callback alive and joins continuation lines."""

    def __init__(self, module: ModuleType) -> None:
        self._last_level = logging.DEBUG
        self.callback = module.llama_log_callback(self._on_log)

    def _on_log(self, level: int, text: bytes | None, _user: Any) -> None:
        if level != 5:  # CONT continues the previous message at its level
            self._last_level = _LEVELS.get(level, logging.DEBUG)
        # llama.cpp's INFO chatter is debug material for our users.
        py_level = logging.DEBUG if self._last_level <= logging.INFO else self._last_level
        if text and native_logger.isEnabledFor(py_level):
            native_logger.log(py_level, "%s", text.decode("utf-8", "replace").rstrip("\n"))


@functools.cache
def lib() -> ModuleType:
    """Return the initialised ``llama_cpp.llama_cpp`` module (once per process)."""
    from llama_cpp import llama_cpp as module  # deferred: loads the shared library

    bridge = _LogBridge(module)
    module.llama_log_set(bridge.callback, ctypes.c_void_p(0))
    module.llama_backend_init()
    module._llamarun_log_bridge = bridge  # keep the callback alive with the module
    return module
