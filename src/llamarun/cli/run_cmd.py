"""``llamarun run``: one answer, or an interactive chat; in-process or against ``llamarun serve``."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional

import typer

__all__ = ["complete_model", "register"]

EXAMPLES = """
Examples:

  llamarun run                                   # chat with the default model (smollm2)

  llamarun run smollm2 "Why is the sky blue?"    # one answer, then exit (a catalog model is pulled first)

  llamarun run "What is 2+2?"                    # not a model name: a prompt for the default model

  echo "Hi" | llamarun run smollm2               # the prompt from stdin

  llamarun run ./model.gguf "Hello" --verbose    # a GGUF file; print speeds and time to first token

  llamarun run smollm2 -t 0.7 -n -1              # sample at temperature 0.7, no length limit

  llamarun run smollm2 --host 127.0.0.1:11434    # use a running `llamarun serve` instead of loading here

In the chat: /help lists the commands (/set parameter, /set system, /show info, /save, /load,
/reset, /bye); \"\"\" starts and ends a multi-line message; Ctrl-C stops an answer; Ctrl-D leaves.
"""


def complete_model(incomplete: str) -> list[str]:
    """Shell completion: the names in the store that start with what was typed."""
    try:
        from ..store import ModelStore

        names = [m.name for m in ModelStore().list()]
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    short = [n.removesuffix(":latest") for n in names]
    return sorted({n for n in short + names if n.startswith(incomplete)})


def _read_prompt(prompt: list[str] | None) -> str | None:
    """The prompt words, else piped stdin; None means "interactive" (stdin is a terminal)."""
    if prompt:
        return " ".join(prompt)
    if sys.stdin.isatty():
        return None
    text = sys.stdin.read().strip()
    if not text:
        raise typer.BadParameter("no prompt: give one as an argument or on stdin, or run in a terminal to chat",
                                 param_hint="PROMPT")
    return text


def _open(model: str, host: str | None, interactive: bool, load_opts: dict[str, Any],
          key: tuple[str | None, Path | None]) -> Any:
    from .chat_backends import open_local, open_remote
    from .ollama_client import client_api_key

    def opening() -> Any:
        if host:
            return open_remote(host, model, preload=interactive, api_key=client_api_key(*key))
        return open_local(model, **load_opts)

    if not (interactive and sys.stderr.isatty()):
        return opening()
    from rich.console import Console

    with Console(stderr=True).status(f"loading {model} ..."):
        return opening()


# A bound on each answer; sampling comes from the model (its Modelfile, the catalog's recommendation,
# its GGUF's general.sampling.*) or Ollama's defaults, as in `ollama run`.
_RUN_DEFAULTS: Mapping[str, Any] = MappingProxyType({"num_predict": 512})


def _given_options(max_tokens: int | None, temperature: float | None, seed: int | None) -> dict[str, Any]:
    from .chat_params import validate_options

    given = {"num_predict": max_tokens, "temperature": temperature, "seed": seed}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    validate_options(options)
    return options


def run(
    model: Optional[str] = typer.Argument(None, help="Store name, catalog name (pulled first) or GGUF path "
                                          "(default: smollm2); text that cannot be a name is the prompt.",
                                          autocompletion=complete_model),
    prompt: Optional[list[str]] = typer.Argument(None, help="Prompt; without one, read stdin or start a chat."),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System message."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", "-n", min=-1, show_default=False, help=(
        "Most tokens per answer (-1: no limit) [default: the Modelfile's num_predict, else 512].")),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", min=0.0, max=100.0, show_default=False,
                                                help=("0 is greedy [default: the model's own: its Modelfile's, the catalog's "
                                                      "recommendation or its GGUF's, else Ollama's 0.8].")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (for temperature > 0)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=0, help="Context size in tokens (default: auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=0, help="CPU threads (default: auto)."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", min=-1, help="Layers on the GPU (-1: auto)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Engine: llama.cpp (default) or numpy."),
    cache_type_k: Optional[str] = typer.Option(None, "--cache-type-k", help="KV-cache type of keys (f16, q8_0, "
                                               "q4_0, ...)."),
    cache_type_v: Optional[str] = typer.Option(None, "--cache-type-v", help="KV-cache type of values."),
    force: bool = typer.Option(False, "--force", help="Load even if the model does not seem to fit in memory."),
    host: Optional[str] = typer.Option(None, "--host", help="Use a running `llamarun serve` at this URL."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key for a --host server that requires one "
                                          "(also LLAMARUN_API_KEY; prefer --api-key-file)."),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", help="File whose first line is that key."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print prompt and generation speeds and TTFT."),
) -> None:
    """Answer a prompt with a model, or chat with it interactively."""
    from .model_names import could_be_model, ensure_local_model
    from .repl import chat_repl, stream_answer
    from .repl_session import ChatSession

    from ..config import load_settings

    if model is not None and not could_be_model(model):  # `run "What is 2+2?"`: a prompt for the default model
        model, prompt = None, [model, *(prompt or [])]
    if host and backend:
        raise typer.BadParameter("--backend chooses the engine of a local model; the server at --host has its own")
    text = _read_prompt(prompt)
    name = model or load_settings().default_model
    if not host:
        ensure_local_model(name)
    options = _given_options(max_tokens, temperature, seed)
    started = time.perf_counter()
    backend = _open(name, host, text is None,
                    {"ctx": ctx, "threads": threads, "gpu_layers": gpu_layers, "force": force,
                     "backend": backend, "cache_types": (cache_type_k, cache_type_v)}, (api_key, api_key_file))
    try:
        modelfile = getattr(backend, "modelfile_parameters", set)()  # the model applies those itself
        options = {**{k: v for k, v in _RUN_DEFAULTS.items() if k not in modelfile}, **options}
        if verbose:
            typer.echo(f"{backend.label} ready in {time.perf_counter() - started:.2f} s", err=True)
        session = ChatSession(backend, name, system, options=options, verbose=verbose)
        if text is not None:
            session.messages.append({"role": "user", "content": text})
            stream_answer(backend, session.conversation(), options, verbose=verbose)
            return
        chat_repl(session)
    finally:
        backend.close()


def register(app: typer.Typer) -> None:
    app.command(help="Answer a prompt with a model, or chat with it.", epilog=EXAMPLES)(run)
