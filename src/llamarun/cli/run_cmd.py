"""``llamarun run``: one chat turn, or an interactive chat."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

__all__ = ["register"]

EXAMPLES = """
Examples:

  llamarun run                                   # chat with the default model (smollm2)

  llamarun run smollm2 "Why is the sky blue?"    # one answer, then exit

  echo "Hi" | llamarun run smollm2               # prompt from stdin

  llamarun run ./model.gguf "Hello" --verbose    # a GGUF file; print timings
"""


def _print_timings(result: Any) -> None:
    t = result.timings
    typer.echo(
        f"\nprompt: {t.prompt_tokens} tokens ({t.cached_tokens} cached), {t.prompt_tokens_per_s:.1f} tokens/s\n"
        f"generated: {t.generated_tokens} tokens, {t.generate_tokens_per_s:.1f} tokens/s\n"
        f"time to first token: {(t.ttft_s or 0.0) * 1000:.0f} ms, total {t.total_s:.2f} s, "
        f"finish: {result.finish_reason.value}",
        err=True,
    )


def _answer(model: Any, messages: list[dict[str, str]], options: dict[str, Any], verbose: bool) -> str:
    """Stream one answer to stdout; returns its text."""
    parts: list[str] = []
    last = None
    for chunk in model.chat(messages, stream=True, **options):
        if chunk.text:
            parts.append(chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        last = chunk
    sys.stdout.write("\n")
    sys.stdout.flush()
    if verbose and last is not None and last.timings is not None:
        from ..types import GenerationResult

        _print_timings(GenerationResult("".join(parts), (), last.finish_reason, last.timings))
    return "".join(parts)


def run(
    model: Optional[str] = typer.Argument(None, help="Store name or GGUF path (default: smollm2)."),
    prompt: Optional[list[str]] = typer.Argument(None, help="Prompt; without one, read stdin or start a chat."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    max_tokens: int = typer.Option(512, "--max-tokens", "-n", help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, "--temperature", "-t", help="0 is greedy."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    ctx: int = typer.Option(4096, "--ctx", help="Context size (prompt + answer)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: all cores)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print timings."),
) -> None:
    """Answer a prompt with a model, or chat with it interactively."""
    import llamarun

    text = " ".join(prompt) if prompt else None
    if text is None and not sys.stdin.isatty():
        text = sys.stdin.read().strip()
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    with llamarun.load(model, n_ctx=ctx, n_slots=1, n_threads=threads) as loaded:
        history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        if text:
            _answer(loaded, [*history, {"role": "user", "content": text}], options, verbose)
            return
        from .repl import chat_repl

        chat_repl(loaded, history, options, verbose, answer=_answer)


def register(app: typer.Typer) -> None:
    app.command(help="Answer a prompt with a model, or chat with it." + EXAMPLES)(run)
