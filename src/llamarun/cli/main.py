"""Entry point: builds the Typer app from each command module's ``register``."""

from __future__ import annotations

import sys

import typer

from ..errors import LlamarunError

__all__ = ["build_app", "main"]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="llamarun",
        help="A local LLM runtime: run, serve and manage GGUF models on llama.cpp.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
    )
    from . import bench_cmd, config_cmds, hw_cmds, misc_cmds, run_cmd, serve_cmd, store_cmds  # deferred: command modules import heavier parts lazily

    for module in (run_cmd, store_cmds, hw_cmds, config_cmds, serve_cmd, bench_cmd, misc_cmds):
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; exit codes: 0 ok, 1 error, 2 usage."""
    app = build_app()
    try:
        # prog_name: `python -m llamarun` shows and completes as `llamarun` (_LLAMARUN_COMPLETE)
        code = app(args=argv, prog_name="llamarun", standalone_mode=False)
    except LlamarunError as exc:
        typer.secho(f"Error: {exc}", err=True, fg="red")
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # Typer/click exit inside standalone_mode=False
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors (Typer may ship its own copy of click)
        import click

        try:
            from typer._click import exceptions as vendored
        except ImportError:
            vendored = click.exceptions
        if isinstance(exc, (click.exceptions.ClickException, vendored.ClickException)):
            exc.show()
            return exc.exit_code
        if isinstance(exc, (click.exceptions.Abort, vendored.Abort)):
            return 130
        raise
    # typer.Exit(n) (and Ctrl-C, as 130) come back as the return value when not standalone
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
