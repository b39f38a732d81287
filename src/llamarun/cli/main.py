"""Entry point: builds the Typer app from each command module's ``register``."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer

from ..errors import LlamarunError

__all__ = ["DEBUG_ENV", "build_app", "main"]

DEBUG_ENV = "LLAMARUN_DEBUG"


def build_app(state: dict[str, Any] | None = None) -> typer.Typer:
    """The CLI; ``state["debug"]`` is set by the global ``--debug`` flag (or ``LLAMARUN_DEBUG=1``)."""
    app = typer.Typer(
        name="llamarun",
        help="A local LLM runtime: run, serve and manage GGUF models on llama.cpp.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
    )
    shared = state if state is not None else {}

    @app.callback()
    def _global(debug: bool = typer.Option(False, "--debug", envvar=DEBUG_ENV, show_envvar=True,
                                           help="Print the full traceback of an unexpected error.")) -> None:
        shared["debug"] = debug

    # deferred: command modules import heavier parts lazily
    from . import (bench_cmd, bridge_cmd, cluster_cmd, config_cmds, hw_cmds, misc_cmds, quantize_cmd, run_cmd,
                   serve_cmd, store_cmds)

    for module in (run_cmd, store_cmds, quantize_cmd, hw_cmds, config_cmds, serve_cmd, cluster_cmd, bridge_cmd,
                   bench_cmd, misc_cmds):
        module.register(app)
    return app


def _debug_requested(state: dict[str, Any]) -> bool:
    if "debug" in state:
        return bool(state["debug"])
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _usage_error(exc: Exception) -> int | None:
    """Show a Typer/Click usage error as Click does; None when ``exc`` is not one."""
    import click

    if isinstance(exc, (typer.TyperException, click.ClickException)):
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"Error: {exc}", err=True)
        return int(getattr(exc, "exit_code", 1))
    if isinstance(exc, (typer.Abort, click.Abort)):
        return 130
    return None


def _unexpected(exc: BaseException, argv: list[str], debug: bool) -> int:
    """One line saying what failed and how to see more; the traceback only with --debug."""
    if debug:
        traceback.print_exception(exc)
        return 1
    command = next((a for a in argv if not a.startswith("-")), "")
    where = f"`llamarun {command}`" if command else "llamarun"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    typer.secho(f"Error: {where} failed unexpectedly: {type(exc).__name__}" + (f": {detail}" if detail else "")
                + f" (run again with --debug or {DEBUG_ENV}=1 for the traceback)", err=True, fg="red")
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; exit codes: 0 ok, 1 error, 2 usage, 130 interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    state: dict[str, Any] = {}
    app = build_app(state)
    try:
        # prog_name: `python -m llamarun` shows and completes as `llamarun` (_LLAMARUN_COMPLETE)
        code = app(args=args, prog_name="llamarun", standalone_mode=False)
    except LlamarunError as exc:
        if _debug_requested(state):
            traceback.print_exception(exc)
        typer.secho(f"Error: {exc}", err=True, fg="red")
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # Typer/click exit inside standalone_mode=False
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into a line
        shown = _usage_error(exc)
        return shown if shown is not None else _unexpected(exc, args, _debug_requested(state))
    # typer.Exit(n) (and Ctrl-C, as 130) come back as the return value when not standalone
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
