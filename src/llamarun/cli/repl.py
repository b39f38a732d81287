"""The interactive chat of ``llamarun run`` (history kept across turns, Ollama-style commands)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

import typer

from ..errors import ContextOverflowError, LlamarunError
from .chat_backends import ChatBackend, TurnStats
from .repl_commands import run_command
from .repl_session import QUOTES, ChatSession, error, unquote

__all__ = ["chat_repl", "chat_turn", "print_stats", "read_input", "stream_answer"]

PROMPT = ">>> "
CONTINUATION = "... "


# -- answers ---------------------------------------------------------------------------


def print_stats(stats: TurnStats) -> None:
    ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else "-"
    cached = f" ({stats.cached_tokens} cached)" if stats.cached_tokens else ""
    typer.echo(
        f"prompt: {stats.prompt_tokens} tokens{cached}, {stats.prompt_tokens_per_s:.1f} tokens/s\n"
        f"generated: {stats.generated_tokens} tokens, {stats.generate_tokens_per_s:.1f} tokens/s\n"
        f"time to first token: {ttft}, total {stats.total_s:.2f} s, finish: {stats.finish_reason}",
        err=True,
    )


def stream_answer(backend: ChatBackend, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any],
                  *, verbose: bool) -> str:
    """Print the answer as it streams; returns its text. Ctrl-C closes the stream (cancelling it)."""
    parts: list[str] = []
    stats: TurnStats | None = None
    with closing(backend.stream(messages, options)) as items:
        for item in items:
            if isinstance(item, TurnStats):
                stats = item
                continue
            parts.append(item)
            sys.stdout.write(item)
            sys.stdout.flush()
    if not parts or not parts[-1].endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if verbose and stats is not None:
        print_stats(stats)
    return "".join(parts)


# -- input -----------------------------------------------------------------------------


def read_input() -> str | None:
    """One message (several lines between triple quotes); None at end of input (Ctrl-D)."""
    try:
        line = input(PROMPT)
    except EOFError:
        return None
    if line.count(QUOTES) % 2 == 0:
        return line
    lines = [line]
    while True:
        try:
            more = input(CONTINUATION)
        except EOFError:
            break
        lines.append(more)
        if QUOTES in more:
            break
    return "\n".join(lines)


def _setup_readline() -> Callable[[], None]:
    """Line editing and a persistent input history; returns the function that saves it."""
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline: plain input()
        return lambda: None
    from ..config import home_dir

    try:
        path = home_dir() / "history"
    except LlamarunError:
        return lambda: None
    readline.set_history_length(1000)
    readline.set_completer(_complete_command)
    readline.parse_and_bind("tab: complete")
    try:
        readline.read_history_file(path)
    except OSError:
        pass

    def save() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError:
            pass

    return save


COMMAND_WORDS = ("/help", "/set parameter ", "/set system ", "/set verbose", "/set quiet", "/show info",
                 "/show parameters", "/show system", "/save ", "/load ", "/reset", "/clear", "/bye", "/exit")


def _complete_command(text: str, state: int) -> str | None:
    """Tab completion of slash commands at the start of the line."""
    line = _line_buffer()
    if not line.startswith("/"):
        return None
    matches = [w[len(line) - len(text):] for w in COMMAND_WORDS if w.startswith(line)]
    return matches[state] if state < len(matches) else None


def _line_buffer() -> str:
    try:
        import readline
    except ImportError:
        return ""
    return readline.get_line_buffer()


# -- the loop --------------------------------------------------------------------------


def chat_repl(session: ChatSession) -> None:
    """Read a message, stream the answer, keep the history, until /bye or Ctrl-D."""
    save_history = _setup_readline()
    typer.echo(f"Chatting with {session.backend.label}. /help for commands, /bye or Ctrl-D to leave.", err=True)
    try:
        while True:
            try:
                text = read_input()
            except KeyboardInterrupt:
                typer.echo("" if _line_buffer() else "\nUse Ctrl-D or /bye to exit.")
                continue
            if text is None:
                typer.echo()
                return
            stripped = text.strip()
            if not stripped:
                continue
            if stripped.startswith("/"):
                if not run_command(session, stripped):
                    return
                continue
            chat_turn(session, unquote(text) if stripped.startswith(QUOTES) else text)
    finally:
        save_history()


def chat_turn(session: ChatSession, text: str) -> None:
    """One user message and its answer; the history keeps both unless the answer failed or was stopped."""
    session.messages.append({"role": "user", "content": text})
    try:
        reply = stream_answer(session.backend, session.conversation(), session.options, verbose=session.verbose)
    except KeyboardInterrupt:
        session.messages.pop()
        sys.stdout.write("\n")
        typer.echo("(answer stopped)", err=True)
        return
    except ContextOverflowError as exc:
        session.messages.pop()
        error(f"{exc}\nThe conversation no longer fits: /reset to start over, or restart with a larger --ctx")
        return
    except LlamarunError as exc:
        session.messages.pop()
        error(str(exc))
        return
    session.messages.append({"role": "assistant", "content": reply})
