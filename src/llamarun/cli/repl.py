"""The interactive chat of ``llamarun run`` (history kept across turns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

__all__ = ["chat_repl"]

HELP = """Commands:
  /help            this help
  /reset, /clear   forget the conversation
  /bye, /exit      leave
  \"\"\"              start and end multi-line input"""


def _read_message(prompt: str) -> str | None:
    try:
        line = input(prompt)
    except EOFError:
        return None
    if not line.startswith('"""'):
        return line
    lines = [line[3:]]
    while not lines[-1].endswith('"""'):
        try:
            lines.append(input("... "))
        except EOFError:
            break
    return "\n".join(lines).removesuffix('"""')


def chat_repl(model: Any, history: list[dict[str, str]], options: dict[str, Any], verbose: bool,
              *, answer: Callable[..., str]) -> None:
    """Read a message, stream the answer, keep the history; Ctrl-C stops an answer, not the chat."""
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:
        pass
    system = [m for m in history if m["role"] == "system"]
    typer.echo("Chat with the model. /help for commands, /bye to leave.", err=True)
    while True:
        message = _read_message(">>> ")
        if message is None or message.strip() in ("/bye", "/exit"):
            return
        command = message.strip()
        if not command:
            continue
        if command == "/help":
            typer.echo(HELP)
            continue
        if command in ("/reset", "/clear"):
            history[:] = list(system)
            typer.echo("Cleared.")
            continue
        history.append({"role": "user", "content": message})
        try:
            reply = answer(model, history, options, verbose)
        except KeyboardInterrupt:
            typer.echo("\n(stopped)", err=True)
            history.pop()
            continue
        history.append({"role": "assistant", "content": reply})
