"""``llamarun bench``: prompt processing and generation speed, then throughput under concurrency."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Optional

import typer

from .run_cmd import complete_model

__all__ = ["BENCH_FLAGS", "register"]

EXAMPLES = """
Measures, through llamarun's runtime: pp512 (prompt processing of 512 tokens, tokens/s) and tg128
(generating 128 tokens, tokens/s), like llama-bench; then the aggregate generation tokens/s and
time to first token with 1, 4 and 8 streams at once (continuous batching).

Examples:

  llamarun bench smollm2                                # pp512, tg128, then 1/4/8 streams

  llamarun bench smollm2 --reps 1 --levels 1,2          # quicker

  llamarun bench ./model.gguf -p 128 -n 32 --json       # smaller tests, JSON for scripts

  llamarun bench smollm2 --threads 4 --levels 1,4,8,16
"""


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or any(not 1 <= n <= 64 for n in levels):
        raise typer.BadParameter(f"expected comma-separated stream counts between 1 and 64, got {text!r}")
    return levels


def _threads(threads: int | None) -> int:
    if threads:
        return threads
    from ..config import load_settings
    from ..hardware import detect_cpu

    return load_settings().threads or detect_cpu().recommended_threads


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from .chat_backends import format_count

    console = Console()
    console.print(f"[bold]{result.model}[/] ({result.architecture}, {format_count(result.parameters)} parameters, "
                  f"{result.quantization}), {result.threads} threads, median of {result.settings.reps}",
                  highlight=False)
    single = Table(title="single stream", title_justify="left")
    for name in ("test", "tokens/s", "±"):
        single.add_column(name, justify="left" if name == "test" else "right")
    for rate in (result.pp, result.tg):
        single.add_row(rate.test, f"{rate.tokens_per_s:.1f}", f"{rate.stdev:.1f}")
    console.print(single)
    multi = Table(title=f"concurrent streams ({result.settings.level_prompt_tokens}-token prompts, "
                        f"{result.settings.gen_tokens} new tokens each)", title_justify="left")
    for name in ("streams", "gen tokens/s", "per stream", "overall tokens/s", "TTFT p50", "TTFT p95"):
        multi.add_column(name, justify="right")
    for level in result.concurrency:
        multi.add_row(str(level.streams), f"{level.tokens_per_s:.1f}", f"{level.per_stream_tokens_per_s:.1f}",
                      f"{level.overall_tokens_per_s:.1f}", f"{level.ttft_p50_s * 1000:.0f} ms",
                      f"{level.ttft_p95_s * 1000:.0f} ms")
    console.print(multi)


# What bench's memory advice may name: its context is --prompt-tokens + --gen-tokens, its slots --levels.
BENCH_FLAGS: Mapping[str, str] = MappingProxyType({"n_ctx": "--prompt-tokens/--gen-tokens", "n_slots": "--levels"})


def _check_fits(path: Any, name: str, n_ctx: int, n_slots: int, n_threads: int) -> None:
    """Refuse a benchmark that will not fit, naming bench's own flags (the library names no flags of bench)."""
    from ..config import load_settings
    from ..gguf import read_model_facts
    from ..hardware import ResourceRequest, check_fits, detect_hardware, plan_resources

    request = ResourceRequest.from_settings(load_settings(), n_ctx=n_ctx, n_slots=n_slots, n_threads=n_threads)
    plan = plan_resources(read_model_facts(path), detect_hardware(), request)
    check_fits(plan, model_name=name, names=BENCH_FLAGS)


def bench(
    model: Optional[str] = typer.Argument(None, help="Store name or GGUF path (default: smollm2).",
                                          autocompletion=complete_model),
    reps: int = typer.Option(3, "--reps", "-r", min=1, max=100, help="Repetitions of pp and tg (median)."),
    levels: str = typer.Option("1,4,8", "--levels", "-l", help="Concurrent stream counts, comma-separated."),
    prompt_tokens: int = typer.Option(512, "--prompt-tokens", "-p", min=1, max=65536, help="Tokens in the pp test."),
    gen_tokens: int = typer.Option(128, "--gen-tokens", "-n", min=2, max=65536,
                                   help="Tokens generated in tg and by each concurrent stream."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads (default: auto)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Benchmark a model: pp/tg tokens/s, then throughput and TTFT at several concurrency levels."""
    import llamarun
    from ..api import resolve_model_path
    from ..config import load_settings
    from .bench_measure import BenchResult, BenchSettings, context_size, run_bench

    settings = BenchSettings(prompt_tokens=prompt_tokens, gen_tokens=gen_tokens, reps=reps, levels=_levels(levels))
    name = model or load_settings().default_model
    n_threads, n_ctx = _threads(threads), context_size(settings)
    path = resolve_model_path(name)
    _check_fits(path, name, n_ctx, max(settings.levels), n_threads)
    from rich.console import Console

    with Console(stderr=True).status(f"loading {name} ...") as status, \
            llamarun.load(path, n_ctx=n_ctx, n_slots=max(settings.levels), n_threads=n_threads,
                          max_queue=max(64, max(settings.levels))) as loaded:
        pp, tg, conc = run_bench(loaded, settings, lambda text: status.update(f"{name}: {text} ..."))
        info = loaded.info
    result = BenchResult(name, info.path, info.architecture, info.n_params, info.quantization, n_threads, n_ctx,
                         settings, pp, tg, conc)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_table(result)


def register(app: typer.Typer) -> None:
    app.command(help="Benchmark a model: tokens/s for prompts and generation, and under concurrency.",
                epilog=EXAMPLES)(bench)
