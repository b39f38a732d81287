"""The whole hardware profile: CPU, RAM, GPUs, and what this llama.cpp build can use."""

from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import dataclass
from typing import Any

from .cpu import CpuInfo, detect_cpu
from .gpu import GpuInfo, detect_gpus
from .ram import MemoryInfo, detect_memory

__all__ = ["BuildDevice", "BuildInfo", "HardwareProfile", "detect_build", "detect_hardware", "parse_system_info"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildDevice:
    """A device llama.cpp's ggml backends see (sizes in bytes)."""

    name: str
    description: str
    backend: str
    type: str  # "cpu" | "gpu" | "igpu" | "accel"
    memory_free: int
    memory_total: int


@dataclass(frozen=True)
class BuildInfo:
    """What the llama.cpp build in this environment offers."""

    system_info: str
    backends: tuple[str, ...]  # e.g. ("CPU",), ("CUDA", "CPU"), ("Metal", "BLAS", "CPU")
    features: tuple[str, ...]  # CPU features the build was compiled for (AVX2 = 1, ...)
    supports_gpu_offload: bool
    max_devices: int
    devices: tuple[BuildDevice, ...] = ()

    @property
    def offload_devices(self) -> tuple[BuildDevice, ...]:
        return tuple(d for d in self.devices if d.type in ("gpu", "igpu"))


def parse_system_info(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(backends, enabled features) from ``llama_print_system_info`` text.

    The text is ``"CPU : SSE3 = 1 | AVX2 = 1 | ... | CUDA : ARCHS = 890 | ..."``: a
    backend name before each " : " and ``KEY = VALUE`` items after it.
    """
    backends: list[str] = []
    features: list[str] = []
    for item in (part.strip() for part in text.split("|")):
        if " : " in item:
            backend, _, item = item.partition(" : ")
            backends.append(backend.strip())
        key, _, value = (p.strip() for p in item.partition("="))
        if key and value == "1":
            features.append(key)
    return tuple(backends), tuple(features)


def detect_build() -> BuildInfo | None:
    """Ask llama.cpp about itself; None when the engine cannot be loaded."""
    try:
        from ..engine import system  # deferred: loads llama.cpp

        info = system.system_info()
    except (ImportError, OSError) as exc:
        logger.warning("llama.cpp is not importable: %s", exc)
        return None
    backends, features = parse_system_info(info)
    devices = tuple(BuildDevice(**dataclasses.asdict(d)) for d in system.backend_devices())
    for d in devices:  # registered backends without a line in system info (e.g. BLAS)
        if d.backend and d.backend not in backends:
            backends += (d.backend,)
    return BuildInfo(
        system_info=info,
        backends=backends,
        features=features,
        supports_gpu_offload=system.supports_gpu_offload(),
        max_devices=system.max_devices(),
        devices=devices,
    )


@dataclass(frozen=True)
class HardwareProfile:
    """This machine as llamarun sees it (sizes in bytes)."""

    os: str
    cpu: CpuInfo
    memory: MemoryInfo
    gpus: tuple[GpuInfo, ...]
    build: BuildInfo | None

    @property
    def can_offload(self) -> bool:
        """True when llama.cpp here can put layers on a GPU it sees."""
        return bool(self.build and self.build.supports_gpu_offload and self.build.offload_devices)

    @property
    def gpu_memory_free(self) -> int:
        """Free memory on the devices llama.cpp can offload to (0 when it cannot)."""
        if not self.can_offload or self.build is None:
            return 0
        return sum(d.memory_free for d in self.build.offload_devices)

    @property
    def unified_memory(self) -> bool:
        """GPU and CPU share RAM (Apple silicon, integrated GPUs)."""
        if self.build is not None and self.build.offload_devices:
            return all(d.type == "igpu" or d.backend == "Metal" for d in self.build.offload_devices)
        return any(g.unified for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["memory"]["usable"] = self.memory.usable
        data["memory"]["budget"] = self.memory.budget
        data["cpu"]["recommended_threads"] = self.cpu.recommended_threads
        data["can_offload"] = self.can_offload
        return data


def detect_hardware(*, probe_build: bool = True) -> HardwareProfile:
    """Inspect this machine; ``probe_build=False`` skips loading llama.cpp."""
    memory = detect_memory()
    return HardwareProfile(
        os=f"{platform.system()} {platform.release()}".strip(),
        cpu=detect_cpu(),
        memory=memory,
        gpus=detect_gpus(memory.total),
        build=detect_build() if probe_build else None,
    )
