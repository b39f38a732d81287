"""What this llama.cpp build can do: backends, devices and their memory, GPU offload."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

from ._lib import lib

__all__ = ["BackendDevice", "backend_devices", "max_devices", "supports_gpu_offload", "system_info"]

# enum ggml_backend_dev_type
_DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}


@dataclass(frozen=True)
class BackendDevice:
    """A device a ggml backend of this build can run on (sizes in bytes)."""

    name: str  # e.g. "CPU", "CUDA0", "Metal"
    description: str
    backend: str  # the registering backend: "CPU", "CUDA", "Metal", "Vulkan", ...
    type: str  # "cpu" | "gpu" | "igpu" | "accel" | "meta"
    memory_free: int
    memory_total: int


def system_info() -> str:
    """llama.cpp's one-line summary of backends and CPU features (llama_print_system_info)."""
    raw = lib().llama_print_system_info()
    return raw.decode("utf-8", "replace").strip() if raw else ""


def supports_gpu_offload() -> bool:
    """True when this build has a backend that can hold model layers off the CPU."""
    return bool(lib().llama_supports_gpu_offload())


def max_devices() -> int:
    """Most devices one model can be split across in this build."""
    return int(lib().llama_max_devices())


@functools.cache
def _ggml() -> Any:
    """The ggml backend-registry functions, bound on llama.cpp's already loaded library."""
    so = lib()._lib  # libllama; dlsym also searches its dependency libggml
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    signatures = {
        "ggml_backend_dev_count": ([], sz),
        "ggml_backend_dev_get": ([sz], vp),
        "ggml_backend_dev_name": ([vp], ctypes.c_char_p),
        "ggml_backend_dev_description": ([vp], ctypes.c_char_p),
        "ggml_backend_dev_memory": ([vp, ctypes.POINTER(sz), ctypes.POINTER(sz)], None),
        "ggml_backend_dev_type": ([vp], ctypes.c_int),
        "ggml_backend_dev_backend_reg": ([vp], vp),
        "ggml_backend_reg_name": ([vp], ctypes.c_char_p),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(so, name)
        fn.argtypes, fn.restype = argtypes, restype
    return so


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def backend_devices() -> tuple[BackendDevice, ...]:
    """Every device registered with ggml in this process (the CPU is always one)."""
    so = _ggml()
    devices = []
    for i in range(so.ggml_backend_dev_count()):
        dev = so.ggml_backend_dev_get(i)
        if not dev:
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        so.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = so.ggml_backend_dev_backend_reg(dev)
        devices.append(
            BackendDevice(
                name=_text(so.ggml_backend_dev_name(dev)),
                description=_text(so.ggml_backend_dev_description(dev)),
                backend=_text(so.ggml_backend_reg_name(reg)) if reg else "",
                type=_DEVICE_TYPES.get(int(so.ggml_backend_dev_type(dev)), "unknown"),
                memory_free=int(free.value),
                memory_total=int(total.value),
            )
        )
    return tuple(devices)
