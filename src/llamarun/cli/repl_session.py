"""What the chat loop (:mod:`.repl`) and its slash commands (:mod:`.repl_commands`) share:
the session state, the help text, quoting and error output."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import typer

from ..errors import InvalidParameterError
from .chat_backends import ChatBackend

__all__ = ["HELP", "QUOTES", "ChatSession", "error", "split_args", "unquote"]

QUOTES = '"""'

HELP = f"""Available commands:
  /set parameter NAME VALUE   set a generation parameter (/set parameter for the list)
  /set system TEXT            set the system message ({QUOTES} for several lines)
  /set verbose | quiet        show | hide timings after each answer
  /show info                  facts about the model
  /show parameters | system   the session's parameters | system message
  /save NAME                  save this conversation (under <home>/conversations)
  /load NAME                  continue a saved conversation
  /reset, /clear              forget the conversation (the system message stays)
  /bye, /exit                 leave (or Ctrl-D)
  /help, /?                   this help

Use {QUOTES} to begin and end a multi-line message.
Ctrl-C stops an answer; at the prompt it clears the line. Up/Down browse the input history."""


@dataclass
class ChatSession:
    """The state of one chat: backend, system message, turns so far, parameters."""

    backend: ChatBackend
    model_name: str
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def conversation(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages


def unquote(text: str) -> str:
    """Strip triple-quote delimiters (or one pair of double quotes) around ``text``."""
    text = text.strip()
    if text.startswith(QUOTES):
        return text[3:].removesuffix(QUOTES).strip("\n")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def error(message: str) -> None:
    typer.secho(f"Error: {message}", err=True, fg="red")


def split_args(text: str) -> list[str]:
    """Shell-like split of a command's arguments; quotes group words."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidParameterError(f"cannot parse {text!r}: {exc}") from None
