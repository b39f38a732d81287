"""``llamarun hw``: this machine's hardware profile, model plans and recommendation."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun hw                         # CPU, RAM, GPUs and llama.cpp backends

  llamarun hw --json                  # the same, for scripts

  llamarun hw --recommend             # the best catalog model for this machine, and why

  llamarun hw --model smollm2         # threads, GPU layers, context and slots chosen for a model

  llamarun hw --model ./m.gguf --ctx 8192 --parallel 4    # would this fit?

  llamarun hw --model smollm2 --ctx 8192 --cache-type-k q8_0 --cache-type-v q8_0   # with a q8_0 KV cache
"""


def _model_path(name: str) -> str:
    if Path(name).is_file():
        return name
    from ..store import ModelStore  # deferred

    return str(ModelStore().get(name).path)


def _plan(model: str, ctx: int | None, parallel: int | None, profile: Any,
          cache_types: tuple[str | None, str | None] = (None, None)) -> Any:
    from ..config import load_settings
    from ..gguf import read_model_facts
    from ..hardware import ResourceRequest, plan_resources

    settings = load_settings({"n_ctx": ctx, "parallel": parallel, "cache_type_k": cache_types[0],
                              "cache_type_v": cache_types[1]})
    return plan_resources(read_model_facts(_model_path(model)), profile, ResourceRequest.from_settings(settings))


def _float32_bytes(model: str) -> int:
    from ..gguf import check_gguf

    return check_gguf(_model_path(model)).float32_bytes


def _finite(value: Any) -> Any:
    """JSON has no Infinity: map non-finite floats (e.g. "fast on the GPU") to null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _print_profile(profile: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..hardware import format_bytes

    cpu, mem, build = profile.cpu, profile.memory, profile.build
    table = Table(title="hardware", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("os", profile.os)
    table.add_row("cpu", f"{cpu.model} ({cpu.architecture})")
    table.add_row("cores", f"{cpu.physical_cores} physical, {cpu.logical_cores} logical, "
                           f"{cpu.usable_cores:g} usable -> {cpu.recommended_threads} threads")
    table.add_row("cpu features", " ".join(cpu.features) or "-")
    limit = f", container limit {format_bytes(mem.cgroup_limit)}" if mem.cgroup_limit else ""
    table.add_row("ram", f"{format_bytes(mem.total)} total, {format_bytes(mem.available)} available{limit}")
    for gpu in profile.gpus:
        table.add_row(f"gpu {gpu.index}", f"{gpu.name} ({gpu.backend}): {format_bytes(gpu.memory_free)} free "
                                           f"of {format_bytes(gpu.memory_total)}")
    if not profile.gpus:
        table.add_row("gpu", "none found")
    if build is not None:
        table.add_row("llama.cpp backends", ", ".join(build.backends))
        table.add_row("llama.cpp devices", ", ".join(f"{d.name} ({d.type})" for d in build.devices) or "-")
        table.add_row("gpu offload", "yes" if profile.can_offload else
                      "no (CPU-only build)" if not build.supports_gpu_offload else "no (no GPU device)")
        table.add_row("build features", " ".join(build.features))
    Console().print(table)


def _format_advice(name: str | None, profile: Any) -> list[str]:
    """Which quantization runs fastest here; for a stored model, whether to convert it and at what cost."""
    from ..errors import LlamarunError
    from ..quant_advice import conversion_advice, fastest_quantization
    from ..store import ModelStore

    from ..config import load_settings

    fastest, why = fastest_quantization(profile)
    store = ModelStore()
    for candidate in dict.fromkeys(n for n in (name, load_settings().default_model) if n):  # stored ones only
        try:
            return conversion_advice(store.get(candidate), profile, store).lines()
        except LlamarunError:
            continue
    return [f"{fastest} runs fastest here ({why})"]


def _print_reasons(title: str, reasons: tuple[str, ...]) -> None:
    typer.echo(f"\n{title}")
    for reason in reasons:
        typer.echo(f"  - {reason}")


def hw(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    recommend: bool = typer.Option(False, "--recommend", help="Name the best catalog model for this machine."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Plan resources for this model (name or path)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=0, help="Context per sequence for --model (0: auto)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", min=0, help="Parallel sequences for --model."),
    cache_type_k: Optional[str] = typer.Option(None, "--cache-type-k", help="KV-cache type of keys for --model "
                                               "(f16, q8_0, q4_0, ...)."),
    cache_type_v: Optional[str] = typer.Option(None, "--cache-type-v", help="KV-cache type of values for --model."),
) -> None:
    """Show CPU, RAM, GPUs and llama.cpp backends; plan a model; recommend one. Exit 1 if --model does not fit."""
    from ..config.names import public_names
    from ..hardware import detect_hardware, format_bytes
    from ..recommend import recommend_model

    profile = detect_hardware()
    plan = _plan(model, ctx, parallel, profile, (cache_type_k, cache_type_v)) if model else None
    advice = recommend_model(profile) if recommend else None
    if as_json:
        data: dict[str, Any] = profile.to_dict()
        if plan is not None:
            data["plan"] = public_names(dataclasses.asdict(plan)) | {"memory_total": plan.estimate.total,
                                                                     "numpy_backend_bytes": _float32_bytes(model)}
        if advice is not None:
            data["recommendation"] = dataclasses.asdict(advice)
            data["recommendation"]["weight_format"] = _format_advice(advice.name, profile)
        typer.echo(json.dumps(_finite(data), indent=2))
    else:
        _print_profile(profile)
        if plan is not None:
            _print_reasons(f"plan for {model}: context {plan.n_ctx} x {plan.n_slots} sequences, "
                           f"{plan.n_threads} threads, {plan.n_gpu_layers} GPU layers",
                           (*plan.reasons, f"the NumPy backend (--backend numpy) holds the weights as float32: "
                                           f"{format_bytes(_float32_bytes(model))}"))
        if advice is not None:
            _print_reasons(f"recommended model: {advice.name or 'none'}", advice.reasons)
            _print_reasons("weight format", tuple(_format_advice(advice.name, profile)))
    if plan is not None and not plan.fits:
        typer.echo(f"{model} does not fit this machine as planned: use a smaller --ctx or --parallel, "
                   "or a smaller model", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(help="Show this machine's hardware, plan a model, or recommend one.", epilog=EXAMPLES)(hw)
