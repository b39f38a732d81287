"""The slash commands of the chat REPL: /set, /show, /save, /load, /reset, /help, /bye.

A bad command or value prints an error and keeps the session; only /bye and /exit end it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import typer

from ..errors import LlamarunError
from .repl_session import HELP, ChatSession, error, split_args, unquote

__all__ = ["run_command"]

SET_HELP = """Available /set commands:
  /set parameter NAME VALUE   set a generation parameter (/set parameter for the list)
  /set system TEXT            set the system message
  /set verbose                print timings after each answer
  /set quiet                  do not print timings"""

SHOW_HELP = """Available /show commands:
  /show info                  facts about the model
  /show parameters            the session's parameters
  /show system                the system message"""


def run_command(session: ChatSession, line: str) -> bool:
    """Run one slash command; False means leave the chat."""
    word, _, rest = line.partition(" ")
    word = word.lower()
    if word in ("/bye", "/exit"):
        return False
    handler = _COMMANDS.get(word)
    if handler is None:
        error(f"unknown command {word!r}. Type /help for help.")
        return True
    try:
        handler(session, rest.strip())
    except (LlamarunError, OSError) as exc:
        error(str(exc))
    except KeyboardInterrupt:
        typer.echo("\n(stopped)", err=True)
    return True


def _help(session: ChatSession, rest: str) -> None:
    typer.echo({"set": SET_HELP, "/set": SET_HELP, "show": SHOW_HELP, "/show": SHOW_HELP}.get(rest, HELP))


def _reset(session: ChatSession, rest: str) -> None:
    session.messages.clear()
    typer.echo("Cleared session context." + (" The system message stays." if session.system else ""))


def _set(session: ChatSession, rest: str) -> None:
    what, _, value = rest.partition(" ")
    if what == "parameter":
        _set_parameter(session, value.strip())
    elif what == "system":
        text = unquote(value)
        session.system = text or None
        typer.echo("Set system message." if text else "Cleared the system message.")
    elif what in ("verbose", "quiet"):
        session.verbose = what == "verbose"
        typer.echo(f"Set '{what}' mode.")
    else:
        if what:
            error(f"unknown /set command {what!r}")
        typer.echo(SET_HELP)


def _set_parameter(session: ChatSession, text: str) -> None:
    from .chat_params import parameter_help, parse_parameter

    args = split_args(text)
    if not args:
        typer.echo(parameter_help())
        return
    key, value = parse_parameter(args[0], args[1:])
    session.options[key] = value
    shown = ", ".join(map(repr, value)) if isinstance(value, list) else value
    typer.echo(f"Set parameter '{key}' to '{shown}'")


def _show(session: ChatSession, rest: str) -> None:
    if rest == "info":
        rows = session.backend.info()
        width = max(len(k) for k, _ in rows) + 2
        typer.echo("\n".join(f"  {k:<{width}}{v}" for k, v in rows))
    elif rest == "parameters":
        if not session.options:
            typer.echo("No parameters were set; the defaults apply.")
        for key, value in session.options.items():
            typer.echo(f"  {key:<20}{json.dumps(value) if isinstance(value, list) else value}")
    elif rest == "system":
        typer.echo(session.system or "No system message was set.")
    else:
        if rest:
            error(f"unknown /show command {rest!r}")
        typer.echo(SHOW_HELP)


def _save(session: ChatSession, rest: str) -> None:
    from .conversations import Conversation, save_conversation

    args = split_args(rest)
    if len(args) != 1:
        error("usage: /save NAME")
        return
    conversation = Conversation(session.model_name, session.system, tuple(session.messages), dict(session.options))
    path = save_conversation(args[0], conversation)
    kept = ""
    save_state = getattr(session.backend, "save_state", None)  # in-process: the KV state goes along
    if save_state is not None and session.messages:
        size = save_state(path.with_suffix(".kv"), session.conversation())
        kept = f" and its KV state ({size:,} bytes)"
    typer.echo(f"Saved {len(session.messages)} messages{kept} to {path}")


def _load(session: ChatSession, rest: str) -> None:
    from .conversations import load_conversation

    args = split_args(rest)
    if len(args) != 1:
        error("usage: /load NAME")
        return
    conversation = load_conversation(args[0])
    restored = _load_state(session, args[0])
    session.system = conversation.system
    session.messages[:] = [dict(m) for m in conversation.messages]
    session.options = dict(conversation.options)
    other = (f" (saved with model {conversation.model})"
             if conversation.model and conversation.model != session.model_name else "")
    typer.echo(f"Loaded conversation '{args[0]}': {len(session.messages)} messages{other}{restored}")


def _load_state(session: ChatSession, name: str) -> str:
    """The KV state saved with conversation ``name``, handed to an in-process model (its next turn
    restores it instead of computing the conversation again); a note for the message."""
    from ..errors import SessionError
    from .conversations import conversation_path

    load_state = getattr(session.backend, "load_state", None)
    state = conversation_path(name).with_suffix(".kv")
    if load_state is None or not state.exists():
        return ""
    try:
        tokens = load_state(state)
    except SessionError as exc:
        error(f"the saved KV state is not used: {exc}")
        return ""
    return f", KV state of {tokens} tokens restored"


_COMMANDS: dict[str, Callable[[ChatSession, str], None]] = {
    "/help": _help, "/?": _help, "/reset": _reset, "/clear": _reset, "/set": _set, "/show": _show,
    "/save": _save, "/load": _load,
}
