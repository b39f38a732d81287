"""The CPU: model name, physical/logical/usable cores and the instruction sets llama.cpp uses."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["CpuInfo", "CpuinfoFacts", "detect_cpu", "parse_cpuinfo"]

# /proc/cpuinfo flag -> the name llama.cpp's system info uses for it.
_X86_FEATURES = {
    "pni": "SSE3",
    "ssse3": "SSSE3",
    "sse4_1": "SSE4_1",
    "sse4_2": "SSE4_2",
    "avx": "AVX",
    "f16c": "F16C",
    "fma": "FMA",
    "bmi2": "BMI2",
    "avx2": "AVX2",
    "avx_vnni": "AVX_VNNI",
    "avx512f": "AVX512",
    "avx512bw": "AVX512_BW",
    "avx512vl": "AVX512_VL",
    "avx512vbmi": "AVX512_VBMI",
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "avx512_fp16": "AVX512_FP16",
    "amx_tile": "AMX_TILE",
    "amx_int8": "AMX_INT8",
    "amx_bf16": "AMX_BF16",
}
_ARM_FEATURES = {
    "asimd": "NEON",
    "fphp": "FP16",
    "asimdhp": "FP16_VA",
    "asimddp": "DOTPROD",
    "i8mm": "MATMUL_INT8",
    "sve": "SVE",
    "sve2": "SVE2",
    "sme": "SME",
}


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU offers this process."""

    model: str
    architecture: str
    physical_cores: int
    logical_cores: int
    usable_cores: float  # after affinity and cgroup CPU quota
    features: tuple[str, ...]  # llama.cpp names: AVX2, AVX512, NEON, ...

    @property
    def recommended_threads(self) -> int:
        """llama.cpp runs best with one thread per physical core this process may use."""
        return max(1, min(self.physical_cores, math.floor(self.usable_cores) or 1))


class CpuinfoFacts(NamedTuple):
    """What ``/proc/cpuinfo`` says."""

    model: str
    logical: int
    physical: int  # distinct (physical id, core id) pairs; 0 when not listed
    flags: frozenset[str]


def parse_cpuinfo(text: str) -> CpuinfoFacts:
    """Model name, logical/physical core counts and flags from ``/proc/cpuinfo`` text."""
    model = ""
    flags: set[str] = set()
    logical = 0
    cores: set[tuple[str, str]] = set()
    physical_id = core_id = ""
    for line in text.splitlines() + [""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Model", "Hardware") and not model:
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif not line.strip() and core_id:
            cores.add((physical_id, core_id))
            physical_id = core_id = ""
    return CpuinfoFacts(model, logical, len(cores), frozenset(flags))


def _usable_cores(logical: int) -> float:
    try:
        usable: float = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = logical
    return float(min(usable, _cgroup_cpu_quota() or usable))


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` or v1 CFS quota, None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _mac_features() -> set[str]:
    names = {"hw.optional.neon": "NEON", "hw.optional.arm.FEAT_DotProd": "DOTPROD",
             "hw.optional.arm.FEAT_I8MM": "MATMUL_INT8", "hw.optional.arm.FEAT_FP16": "FP16",
             "hw.optional.avx2_0": "AVX2", "hw.optional.avx1_0": "AVX", "hw.optional.avx512f": "AVX512"}
    return {label for key, label in names.items() if _sysctl(key) == "1"}


def detect_cpu() -> CpuInfo:
    """Inspect this machine's CPU (Linux: /proc/cpuinfo; macOS: sysctl; else platform)."""
    import psutil  # deferred

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    model, features = "", set()
    if sys.platform.startswith("linux"):
        try:
            info = parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:
            info = CpuinfoFacts("", 0, 0, frozenset())
        model, flags = info.model, info.flags
        table = _ARM_FEATURES if platform.machine().lower() in ("aarch64", "arm64") else _X86_FEATURES
        features = {label for flag, label in table.items() if flag in flags}
    elif sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
        features = _mac_features()
    order = list(_X86_FEATURES.values()) + list(_ARM_FEATURES.values())
    return CpuInfo(
        model=model or platform.processor() or platform.machine() or "unknown",
        architecture=platform.machine() or "unknown",
        physical_cores=physical,
        logical_cores=logical,
        usable_cores=_usable_cores(logical),
        features=tuple(sorted(features, key=lambda f: order.index(f) if f in order else len(order))),
    )
