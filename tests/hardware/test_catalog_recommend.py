"""`hw --recommend` over the real catalog: different memory budgets and CPUs pick different models."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from llamarun.hardware import HardwareProfile, detect_hardware
from llamarun.recommend import recommend_model
from llamarun.hardware.cpu import CpuInfo
from llamarun.hardware.ram import MemoryInfo
from llamarun.store import load_catalog

GIB = 1 << 30


@pytest.fixture(scope="module")
def machine() -> HardwareProfile:
    return detect_hardware(probe_build=False)


def cpu_machine(profile: HardwareProfile, ram: int, cores: int) -> HardwareProfile:
    cpu = CpuInfo("Test CPU", "x86_64", cores, cores, float(cores), ("AVX2",))
    memory = MemoryInfo(total=ram * 2, available=ram, swap_total=0)
    return dataclasses.replace(profile, cpu=cpu, memory=memory, gpus=(), build=None)


def test_the_catalog_maps_short_names_to_the_ollama_library() -> None:
    catalog = load_catalog()
    for short in ("llama3.2:1b", "llama3.2:3b", "qwen3:0.6b", "qwen3:1.7b", "gemma3:1b", "phi4-mini",
                  "smollm2:135m"):
        entry = catalog[short]
        assert entry.source.startswith("ollama://library/") and entry.sha256 == "" and entry.size_approximate
        assert entry.parameters and entry.quantization and entry.size > 0
    default = catalog["smollm2"]
    assert default.source.startswith("pip:") and len(default.sha256) == 64 and not default.size_approximate


def test_memory_budgets_and_cpus_pick_different_models(machine: HardwareProfile) -> None:
    catalog = load_catalog()
    small = recommend_model(cpu_machine(machine, 1 * GIB, 2), catalog)
    mid = recommend_model(cpu_machine(machine, 4 * GIB, 2), catalog)
    big = recommend_model(cpu_machine(machine, 16 * GIB, 8), catalog)
    names = [small.name, mid.name, big.name]
    assert len(set(names)) == 3, names
    judged = {c.name: c for c in small.candidates}
    assert judged[small.name].fits and judged[small.name].memory <= cpu_machine(machine, GIB, 2).memory.budget
    assert not judged["llama3.1:8b"].fits
    size = {n: e.size for n, e in catalog.items()}
    assert size[small.name] < size[mid.name] < size[big.name]
    for advice in (small, mid, big):  # each says why: memory, speed, and the larger ones it passed over
        text = "\n".join(advice.reasons)
        assert "usable memory" in text and "tokens/s" in text
        assert ("passed over" in text) == (advice is not big)  # the big machine took the largest entry
    assert all(c.tokens_per_s >= 10 for c in (judged[small.name],))
    tiny_ram = recommend_model(cpu_machine(machine, 64 << 20, 2), catalog)
    assert tiny_ram.name is None and "no catalog model fits" in tiny_ram.reasons[0]


def test_hw_recommend_command_explains_its_choice() -> None:
    proc = subprocess.run([sys.executable, "-m", "llamarun", "hw", "--recommend"], capture_output=True, text=True,
                          timeout=120, env=None)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"recommended model: (\S+)", proc.stdout)
    assert match and match.group(1) in load_catalog(), proc.stdout
    assert "tokens/s" in proc.stdout and "usable memory" in proc.stdout
