"""GPUs and their memory: NVIDIA (NVML through pynvml, else nvidia-smi) and Apple Metal.

Every probe is optional: a missing library or binary means "no such GPU", never an error.
"""

from __future__ import annotations

import logging
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["GpuInfo", "detect_gpus", "parse_nvidia_smi"]

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_SMI_QUERY = "index,name,memory.total,memory.free,driver_version"


@dataclass(frozen=True)
class GpuInfo:
    """One GPU. Sizes in bytes; ``unified`` when it shares system RAM (Apple silicon)."""

    index: int
    name: str
    vendor: str  # "nvidia" | "apple"
    backend: str  # the llama.cpp backend that drives it: "CUDA" | "Metal"
    memory_total: int
    memory_free: int
    driver: str = ""
    unified: bool = False


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version
    --format=csv,noheader,nounits`` (memory in MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            continue
        try:
            index, total, free = int(fields[0]), int(float(fields[2])), int(float(fields[3]))
        except ValueError:
            continue  # "[N/A]" and the like
        driver = fields[4] if len(fields) > 4 else ""
        gpus.append(GpuInfo(index, fields[1], "nvidia", "CUDA", total * _MIB, free * _MIB, driver))
    return gpus


def _nvml_gpus() -> list[GpuInfo] | None:
    try:
        import pynvml  # type: ignore[import-not-found]  # optional: nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError: no driver / no GPU
        logger.debug("NVML unavailable: %s", exc)
        return None
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            driver = pynvml.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else str(driver)
            gpus.append(GpuInfo(i, name, "nvidia", "CUDA", int(mem.total), int(mem.free), driver))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _smi_gpus() -> list[GpuInfo]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    cmd = [smi, f"--query-gpu={_SMI_QUERY}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("nvidia-smi failed: %s", exc)
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def _apple_gpu(total_ram: int) -> list[GpuInfo]:
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return []
    # Metal lets one process wire about 2/3 of RAM (3/4 above 36 GB): recommendedMaxWorkingSetSize.
    share = 0.75 if total_ram > 36 * 1024**3 else 2 / 3
    usable = int(total_ram * share)
    try:
        chip = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        chip = "Apple silicon"
    return [GpuInfo(0, f"{chip} GPU", "apple", "Metal", usable, usable, unified=True)]


def detect_gpus(total_ram: int) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs (NVML, else nvidia-smi) and the Apple silicon GPU, if any."""
    nvidia = _nvml_gpus()
    if nvidia is None:
        nvidia = _smi_gpus()
    return tuple(nvidia) + tuple(_apple_gpu(total_ram))
