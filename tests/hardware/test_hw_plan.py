"""Resource plans: automatic choices, shrinking to fit, refusals with numbers, GPU splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llamarun.config import load_settings
from llamarun.engine import Context, Model
from llamarun.errors import GGUFFormatError, InsufficientMemoryError, InvalidParameterError
from llamarun.gguf import read_model_facts
from llamarun.hardware import (
    BuildDevice,
    BuildInfo,
    HardwareProfile,
    MemoryInfo,
    ResourceRequest,
    check_fits,
    detect_hardware,
    estimate_memory,
    plan_resources,
)
from llamarun.recommend import recommend_model
from llamarun.store.catalog import CatalogEntry

MIB, GIB = 1 << 20, 1 << 30


@pytest.fixture(scope="module")
def machine() -> HardwareProfile:
    return detect_hardware()


def with_ram(profile: HardwareProfile, available: int) -> HardwareProfile:
    return dataclasses.replace(profile, memory=MemoryInfo(total=64 * GIB, available=available, swap_total=0))


def with_gpu(profile: HardwareProfile, free: int) -> HardwareProfile:
    gpu = BuildDevice("CUDA0", "Test GPU", "CUDA", "gpu", free, free)
    cpu = BuildDevice("CPU", "Test CPU", "CPU", "cpu", 64 * GIB, 64 * GIB)
    build = BuildInfo("CUDA : ARCHS = 890 | CPU : AVX2 = 1 |", ("CUDA", "CPU"), ("AVX2",), True, 16, (gpu, cpu))
    return dataclasses.replace(profile, build=build)


def test_auto_plan_on_this_machine(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    plan = plan_resources(facts, machine)
    assert plan.fits
    assert plan.n_threads == machine.cpu.recommended_threads
    assert plan.n_ctx == 4096 and plan.n_slots == 4 and plan.n_ctx_total == 4096 * 4
    if not machine.can_offload:
        assert plan.n_gpu_layers == 0 and any("GPU layers 0" in r for r in plan.reasons)
    assert any(r.startswith("threads") for r in plan.reasons)
    check_fits(plan)  # no error


def test_plan_context_options_create_what_was_estimated(tiny_model_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(tiny_model_path)
    plan = plan_resources(facts, machine, ResourceRequest(n_ctx=1000, n_slots=3))
    options = plan.context_options()
    assert options.n_seq_max == 3 and options.n_threads == plan.n_threads
    with Model(tiny_model_path) as model, Context(model, options) as ctx:
        assert ctx.n_ctx == plan.n_ctx_total == plan.estimate.n_ctx
        assert ctx.n_ctx // ctx.n_seq_max == plan.n_ctx >= 1000  # each sequence gets what it asked for


def test_requested_values_are_kept(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    plan = plan_resources(facts, machine, ResourceRequest(n_ctx=2048, n_slots=2, n_threads=1))
    assert (plan.n_ctx, plan.n_slots, plan.n_threads) == (2048, 2, 1)
    assert "context 2048 tokens per sequence (requested)" in plan.reasons


def test_auto_values_shrink_to_fit_a_small_budget(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    budget = 300 * MIB
    plan = plan_resources(facts, machine, ResourceRequest(memory_budget=budget))
    assert plan.fits and plan.estimate.total <= budget
    assert plan.n_ctx * plan.n_slots < 4096 * 4
    assert any(r.startswith("shrunk") for r in plan.reasons)


def test_budget_from_available_ram_keeps_headroom(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    tight = with_ram(machine, 1 * GIB)
    plan = plan_resources(facts, tight)
    assert plan.ram_budget < 1 * GIB and plan.fits


def test_does_not_fit_is_refused_with_numbers(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    plan = plan_resources(facts, machine, ResourceRequest(n_ctx=8192, n_slots=8, memory_budget=200 * MIB))
    assert not plan.fits and (plan.n_ctx, plan.n_slots) == (8192, 8)  # requested values are not shrunk
    with pytest.raises(InsufficientMemoryError) as info:
        check_fits(plan, model_name="smollm2")
    message = str(info.value)
    assert "smollm2" in message and "200.0 MiB" in message and "KV cache" in message and "--force" in message
    assert info.value.http_status == 507
    check_fits(plan, force=True)  # forced: a warning, no error


def test_even_the_smallest_auto_choice_may_not_fit(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    plan = plan_resources(facts, machine, ResourceRequest(memory_budget=50 * MIB))
    assert not plan.fits and plan.n_slots == 1 and plan.n_ctx == 512
    with pytest.raises(InsufficientMemoryError, match="requires more system memory"):
        check_fits(plan)


def test_requested_gpu_layers_on_a_cpu_only_build(smollm2_path: Path, machine: HardwareProfile) -> None:
    cpu_only = dataclasses.replace(machine, build=dataclasses.replace(
        machine.build or with_gpu(machine, 0).build, supports_gpu_offload=False))  # type: ignore[arg-type]
    plan = plan_resources(read_model_facts(smollm2_path), cpu_only, ResourceRequest(n_gpu_layers=10))
    assert plan.n_gpu_layers == 0 and plan.estimate.gpu_bytes == 0
    assert any("CPU-only" in r and "10 requested" in r for r in plan.reasons)


def test_gpu_with_room_takes_every_layer(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    plan = plan_resources(facts, with_gpu(machine, 8 * GIB))
    assert plan.n_gpu_layers == facts.n_layer + 1 and plan.n_slots == 8
    assert plan.estimate.gpu_bytes > plan.estimate.kv_cache and plan.fits


def test_small_gpu_gets_part_of_the_layers(smollm2_path: Path, machine: HardwareProfile) -> None:
    facts = read_model_facts(smollm2_path)
    request = ResourceRequest(n_ctx=4096, n_slots=1)
    full = estimate_memory(facts, n_ctx=4096, n_gpu_layers=facts.n_layer + 1)
    gpu_free = int(full.gpu_bytes * 0.8 / 0.9)  # the planner keeps 10% of the GPU free
    plan = plan_resources(facts, with_gpu(machine, gpu_free), request)
    assert 0 < plan.n_gpu_layers <= facts.n_layer and plan.fits
    assert plan.estimate.gpu_bytes <= plan.gpu_budget
    assert plan.estimate.cpu_bytes > estimate_memory(facts, n_ctx=4096, n_gpu_layers=-1).cpu_bytes


def test_request_from_settings_and_validation(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('n_ctx = 2048\nparallel = 2\nmemory_budget = "1GiB"\n')
    settings = load_settings(env={"LLAMARUN_CONFIG": str(config)})
    request = ResourceRequest.from_settings(settings, n_slots=3)
    assert (request.n_ctx, request.n_slots, request.memory_budget, request.n_gpu_layers) == (2048, 3, GIB, -1)
    with pytest.raises(InvalidParameterError):
        ResourceRequest(n_ctx=-1)
    with pytest.raises(InvalidParameterError):
        ResourceRequest(n_gpu_layers=-2)


def test_recommendation_prefers_the_largest_fast_model(smollm2_path: Path, machine: HardwareProfile) -> None:
    catalog = {
        "smollm2": CatalogEntry("smollm2", "pip:x", "0" * 64, 98_362_432, parameters="135M"),
        "huge": CatalogEntry("huge", "hf://x", "0" * 64, 200 * GIB, parameters="400B"),
        "mid": CatalogEntry("mid", "hf://x", "0" * 64, 400 * MIB, parameters="700M"),
    }
    advice = recommend_model(with_ram(machine, 16 * GIB), catalog)
    judged = {c.name: c for c in advice.candidates}
    assert not judged["huge"].fits and judged["smollm2"].fits
    assert advice.name == "mid"  # the largest that fits and is fast enough
    assert advice.reasons and "mid" in advice.reasons[0]
    slow = {**catalog, "big": CatalogEntry("big", "hf://x", "0" * 64, 9 * GIB, parameters="14B")}
    cpu_only = dataclasses.replace(with_ram(machine, 32 * GIB), build=None, gpus=())
    advice = recommend_model(cpu_only, slow)
    assert {c.name: c for c in advice.candidates}["big"].fits
    assert advice.name == "mid"  # "big" fits but is too slow on the CPU
    none_fit = recommend_model(with_ram(machine, 64 * MIB), {"huge": catalog["huge"]})
    assert none_fit.name is None and "no catalog model fits" in none_fit.reasons[0]


def test_hostile_metadata_is_a_format_error(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "hostile.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1 << 30)
    writer.add_embedding_length(64)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFFormatError):
        read_model_facts(path)
