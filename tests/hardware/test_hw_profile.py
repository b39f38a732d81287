"""Hardware detection on this machine agrees with /proc, and parsers read real formats."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from llamarun.hardware import (
    detect_build,
    detect_cpu,
    detect_hardware,
    detect_memory,
    parse_cpuinfo,
    parse_meminfo,
    parse_nvidia_smi,
    parse_system_info,
)
from llamarun.hardware.cpu import _X86_FEATURES

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def proc(name: str) -> str:
    return Path("/proc", name).read_text(errors="replace")


@linux_only
def test_cpu_matches_proc_cpuinfo() -> None:
    text = proc("cpuinfo")
    blocks = [b for b in text.split("\n\n") if b.strip().startswith("processor")]
    fields = [dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in b.splitlines())) for b in blocks]
    cpu = detect_cpu()

    assert cpu.logical_cores == len(blocks) == os.cpu_count()
    if "model name" in fields[0]:
        assert cpu.model == fields[0]["model name"]
    if "core id" in fields[0]:
        cores = {(f.get("physical id", ""), f["core id"]) for f in fields}
        assert cpu.physical_cores == len(cores)
    assert 1 <= cpu.recommended_threads <= cpu.physical_cores
    assert cpu.usable_cores <= cpu.logical_cores
    flags = set(fields[0].get("flags", "").split())
    if flags:  # x86: every feature reported is a flag the kernel lists, and vice versa
        expected = {label for flag, label in _X86_FEATURES.items() if flag in flags}
        assert set(cpu.features) == expected
        assert ("AVX2" in cpu.features) == ("avx2" in flags)


@linux_only
def test_memory_matches_proc_meminfo() -> None:
    before = parse_meminfo(proc("meminfo"))
    mem = detect_memory()
    after = parse_meminfo(proc("meminfo"))
    assert mem.total == before["MemTotal"]
    low = min(before["MemAvailable"], after["MemAvailable"])
    high = max(before["MemAvailable"], after["MemAvailable"])
    slack = 256 << 20  # other processes allocate between the reads
    assert low - slack <= mem.available <= high + slack
    assert mem.swap_total == before.get("SwapTotal", 0)
    assert 0 < mem.usable <= mem.available
    if mem.cgroup_limit is not None:
        assert mem.usable <= mem.cgroup_limit


def test_parse_cpuinfo_counts_cores_and_threads() -> None:
    two_cores_four_threads = "\n\n".join(
        f"processor\t: {i}\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: {i // 2}\nflags\t\t: fpu avx2 pni"
        for i in range(4)
    )
    facts = parse_cpuinfo(two_cores_four_threads)
    assert (facts.model, facts.logical, facts.physical) == ("Test CPU", 4, 2)
    assert {"avx2", "pni"} <= facts.flags


def test_parse_meminfo_units() -> None:
    values = parse_meminfo("MemTotal:       1000 kB\nMemAvailable:    500 kB\nHugePages_Total:       0\n")
    assert values == {"MemTotal": 1024000, "MemAvailable": 512000, "HugePages_Total": 0}


def test_parse_nvidia_smi_output() -> None:
    text = "0, NVIDIA GeForce RTX 4090, 24564, 23000, 550.54\n1, Tesla T4, 15360, [N/A], 550.54\n"
    gpus = parse_nvidia_smi(text)
    assert len(gpus) == 1  # the row with unreadable memory is skipped
    gpu = gpus[0]
    assert (gpu.name, gpu.vendor, gpu.backend, gpu.driver) == ("NVIDIA GeForce RTX 4090", "nvidia", "CUDA", "550.54")
    assert (gpu.memory_total, gpu.memory_free) == (24564 << 20, 23000 << 20)


def test_parse_system_info_with_a_gpu_backend() -> None:
    text = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 |"
    backends, features = parse_system_info(text)
    assert backends == ("CUDA", "CPU")
    assert "AVX2" in features and "USE_GRAPHS" in features and "AVX512" not in features


def test_build_info_from_this_llama_cpp() -> None:
    build = detect_build()
    assert build is not None
    assert "CPU" in build.backends and "CPU :" in build.system_info
    assert any(d.type == "cpu" for d in build.devices)
    assert isinstance(build.supports_gpu_offload, bool) and build.max_devices >= 1
    cpu = detect_cpu()
    # llama.cpp was built for features this CPU has (otherwise it would not run here).
    for feature in ("AVX", "AVX2", "F16C", "FMA"):
        if feature in build.features and sys.platform.startswith("linux") and cpu.features:
            assert feature in cpu.features


def test_profile_is_consistent() -> None:
    profile = detect_hardware()
    data = profile.to_dict()
    assert data["cpu"]["logical_cores"] == profile.cpu.logical_cores
    assert data["memory"]["usable"] == profile.memory.usable
    assert data["can_offload"] == profile.can_offload
    if profile.build is not None and not profile.build.supports_gpu_offload:
        assert not profile.can_offload and profile.gpu_memory_free == 0
    assert detect_hardware(probe_build=False).build is None
