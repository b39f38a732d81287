"""``llamarun quantize`` (a stored model into another weight format) and ``llamarun perplexity``."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

__all__ = ["offer_conversion", "register"]

EXAMPLES = """
Examples:

  llamarun quantize smollm2 --type Q4_0 --allow-requantize    # -> smollm2:q4_0 (the stored SmolLM2 is Q4_1)

  llamarun quantize mymodel-f16 --type Q4_K_M --name mymodel:q4_k_m

  llamarun perplexity smollm2:q4_0                              # quality on llamarun's sample text

Types: F16 BF16 Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K_L Q3_K_M
Q3_K_S Q2_K.  A source that is already quantized (most downloads, SmolLM2's Q4_1) needs
--allow-requantize (llama.cpp's allow_requantize): the errors of both quantizations add up, so
quantize from an F16/BF16 file when you have one.
"""


class _TensorBar:
    """A bar over the tensors llama.cpp writes, and a line per other step."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.task: Any = None
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("tensors"), TimeElapsedColumn(), console=Console(stderr=True))

    def __enter__(self) -> _TensorBar:
        if not self.quiet:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.total:
            if self.task is None:
                self.task = self.progress.add_task("quantizing", total=event.total)
            self.progress.update(self.task, completed=event.completed, description=event.status[:60])
        else:
            self.progress.console.print(event.status, highlight=False)


def quantize(
    source: str = typer.Argument(..., help="Stored model to quantize."),
    type_name: str = typer.Option("Q4_K_M", "--type", "-t", help="Target type (Q4_0, Q4_K_M, Q5_K_M, Q8_0, ...)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Store under this name[:tag] "
                                       "(default <source>:<type>)."),
    allow_requantize: bool = typer.Option(False, "--allow-requantize", help="Allow a source that is already "
                                          "quantized (its errors add up with the new ones)."),
    threads: int = typer.Option(0, "--threads", min=0, help="Threads (0: every core)."),
    measure: bool = typer.Option(True, "--perplexity/--no-perplexity", help="Measure the quality cost "
                                 "(perplexity of both on llamarun's sample text)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Quantize a stored model with llama.cpp into a new model of the store."""
    from ..store import ModelStore

    _run(ModelStore(), source, type_name, name=name, allow_requantize=allow_requantize, threads=threads,
         measure=measure, as_json=as_json, quiet=quiet)


def perplexity(
    model: str = typer.Argument(..., help="Stored model name or GGUF path."),
    ctx: int = typer.Option(256, "--ctx", min=16, help="Tokens per chunk (the second half of each is scored)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: auto)."),
) -> None:
    """Perplexity of a model on llamarun's short sample text (lower is better; compare quantizations)."""
    from ..api import resolve_model_path
    from ..quality import measure_perplexity

    result = measure_perplexity(resolve_model_path(model), n_ctx=ctx, n_threads=threads)
    typer.echo(f"{model}: perplexity {result.value:.3f} over {result.scored_tokens} tokens "
               f"({result.chunks} chunks of {result.n_ctx})")


def offer_conversion(store: Any, model: Any, *, interactive: bool) -> None:
    """After a pull: say which format runs fastest here and, on a terminal, offer to convert."""
    from ..hardware import detect_hardware
    from ..quant_advice import conversion_advice

    advice = conversion_advice(model, detect_hardware(), store)
    if not advice.worth_converting or advice.converted:
        return
    for line in advice.lines():
        typer.echo(line, err=True)
    if interactive and typer.confirm(f"convert {model.name} to {advice.fastest} now?", default=False, err=True):
        _run(store, model.name, advice.fastest, allow_requantize=True, quiet=False)


def _run(store: Any, source: str, type_name: str, *, name: str | None = None, allow_requantize: bool = False,
         threads: int = 0, measure: bool = True, as_json: bool = False, quiet: bool = False) -> None:
    from ..quantizing import quantize_stored
    from ..units import format_bytes

    with _TensorBar(quiet or as_json) as bar:
        result = quantize_stored(source, type_name, name=name, allow_requantize=allow_requantize, store=store,
                                 n_threads=threads, measure=measure, emit=bar)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    how = " (requantized with --allow-requantize)" if result.requantized else ""
    typer.echo(f"{result.model.name}  {result.model.digest}  {format_bytes(result.model.size)}  "
               f"from {result.source.name} ({format_bytes(result.source.size)}) in {result.seconds:.1f} s{how}")
    if result.quality is not None:
        typer.echo(f"quality: {result.quality.describe()}")


def register(app: typer.Typer) -> None:
    app.command(help="Quantize a stored model into another weight format (llama.cpp).", epilog=EXAMPLES)(quantize)
    app.command(help="Perplexity of a model on a short sample text.")(perplexity)
