"""The library (llamarun.load) and the server (the model manager) plan a model the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llamarun.api import plan_config
from llamarun.config import load_settings
from llamarun.gguf import read_model_facts
from llamarun.hardware import (
    BuildDevice,
    BuildInfo,
    HardwareProfile,
    MemoryInfo,
    detect_hardware,
    estimate_memory,
)
from llamarun.runtime import (
    HardwareCache,
    LoadOptions,
    ManagerConfig,
    ModelManager,
    ModelSource,
    RuntimeConfig,
    hardware_planner,
)

pytestmark = pytest.mark.timeout(120)
GIB = 1 << 30


@pytest.fixture(scope="module")
def profile() -> HardwareProfile:
    """This machine's CPU with a made-up 64 GiB of RAM, 8 GiB of it available."""
    return dataclasses.replace(detect_hardware(), memory=MemoryInfo(total=64 * GIB, available=8 * GIB, swap_total=0))


def _settings(tmp_path: Path, **flags: object):
    empty = tmp_path / "config.toml"
    empty.write_text("")
    return load_settings(flags, env={"LLAMARUN_CONFIG": str(empty)})


def _served(path: Path, profile: HardwareProfile, config: ManagerConfig) -> RuntimeConfig:
    """The RuntimeConfig `llamarun serve`'s manager loads ``path`` with on ``profile``."""
    manager = ModelManager(config, resolve=lambda name: ModelSource(f"{name}:latest", path),
                           planner=hardware_planner(HardwareCache(profile)), memory=lambda: profile.memory.budget)
    try:
        with manager.acquire("tiny") as lease:
            return lease.config
    finally:
        manager.close()


def test_automatic_choices_are_the_same(tiny_model_path: Path, profile: HardwareProfile, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    served = _served(tiny_model_path, profile, ManagerConfig.from_settings(settings))
    library = plan_config(tiny_model_path, {"max_queue": settings.max_queue}, hardware=profile)
    assert library == served
    assert served.n_threads == profile.cpu.recommended_threads and served.n_slots == 4


def test_explicit_values_and_memory_budget_are_applied_the_same(tiny_model_path: Path, profile: HardwareProfile,
                                                                 tmp_path: Path) -> None:
    facts = read_model_facts(tiny_model_path)

    def need(slots: int) -> int:
        return estimate_memory(facts, n_ctx=1000 * slots, n_seq_max=slots, n_batch=256, n_ubatch=256).cpu_bytes

    budget = need(2) + (need(4) - need(2)) // 2  # room for two slots of 1000 tokens, not four
    settings = _settings(tmp_path, n_ctx=1000, threads=1, n_batch=256, memory_budget=budget)
    served = _served(tiny_model_path, profile, ManagerConfig.from_settings(settings))
    library = plan_config(tiny_model_path, {"n_ctx": 1000, "n_threads": 1, "n_batch": 256, "max_queue": 512},
                          memory_budget=budget, hardware=profile)
    assert library == served
    # the asked context exactly (not llama.cpp's padded 1024), slots shrunk to the budget, batches clamped
    assert (served.n_ctx, served.n_slots, served.n_threads, served.n_batch, served.n_ubatch) == (1000, 2, 1, 256, 256)


def test_gpu_layers_and_flash_attn_come_from_the_same_plan(tiny_model_path: Path, profile: HardwareProfile,
                                                            tmp_path: Path) -> None:
    gpu = BuildDevice("CUDA0", "Test GPU", "CUDA", "gpu", 8 * GIB, 8 * GIB)
    cpu = BuildDevice("CPU", "Test CPU", "CPU", "cpu", 64 * GIB, 64 * GIB)
    with_gpu = dataclasses.replace(profile, build=BuildInfo("CUDA : ARCHS = 890 | CPU : AVX2 = 1 |", ("CUDA", "CPU"),
                                                            ("AVX2",), True, 16, (gpu, cpu)))
    config = ManagerConfig.from_settings(_settings(tmp_path))
    plan = hardware_planner(HardwareCache(with_gpu))
    served, _bytes = plan(ModelSource("tiny:latest", tiny_model_path), LoadOptions(), config, with_gpu.memory.budget)
    library = plan_config(tiny_model_path, {"max_queue": config.max_queue}, hardware=with_gpu)
    assert library == served
    assert served.n_gpu_layers == read_model_facts(tiny_model_path).n_layer + 1 and served.n_slots == 8
    assert served.flash_attn is None  # neither asks: llama.cpp chooses, on both paths
