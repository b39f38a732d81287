"""``llamarun config``: the effective settings and where each one came from."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

__all__ = ["register"]

EXAMPLES = """
Precedence: defaults < config file < LLAMARUN_* environment variables < flags.
Durations and sizes show as you would write them (5m, 30s, 8GiB); with --json each of them has
"value" in seconds or bytes and "text" as shown.

Examples:

  llamarun config show                          # table: setting, value, source

  llamarun config show --json                   # the same, for scripts

  LLAMARUN_PORT=8080 llamarun config show       # environment beats the file

  llamarun config show --set port=9000          # as a command-line flag would

  llamarun config path                          # which config file is read
"""

config_app = typer.Typer(
    name="config",
    help="Show the effective configuration and where each value came from.",
    no_args_is_help=True,
    epilog=EXAMPLES,
)


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    from ..errors import ConfigError

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}", source="flag --set")
        overrides[key.strip().replace("-", "_")] = value
    return overrides


_AUTO = {"threads": 0, "n_ctx": 0, "parallel": 0, "memory_budget": 0, "n_gpu_layers": -1}


def _shown(key: str, value: Any, written: dict[str, str]) -> str:
    if value is None:
        return ""
    if _AUTO.get(key, object()) == value:
        return f"auto ({value})"
    if key in written:
        return written[key]
    return json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def _rows(settings: Any) -> list[tuple[str, Any, str]]:
    values = settings.display_values()
    return [(key, values[key], str(origin)) for key, origin in settings.origins.items()]


def _json_entry(key: str, value: Any, source: str, written: dict[str, str]) -> dict[str, Any]:
    """``value`` stays a number in base units (seconds, bytes); durations and sizes add the ``text`` shown."""
    entry: dict[str, Any] = {"value": value, "source": source}
    if key in written:
        entry["text"] = written[key]
    return entry


@config_app.command("show", epilog=EXAMPLES)
def show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config_file: Optional[str] = typer.Option(None, "--config", help="Read this TOML file instead."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override KEY=VALUE as a flag would."),
) -> None:
    """Print every setting's effective value and its source (default, file, env, flag)."""
    from ..config import load_settings

    settings = load_settings(_parse_sets(sets or []), config_file=config_file)
    rows = _rows(settings)
    written = settings.written_values()
    if as_json:
        out = {
            "config_file": str(settings.config_file) if settings.config_file else None,
            "settings": {key: _json_entry(key, value, source, written) for key, value, source in rows},
        }
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"config file: {settings.config_file or 'none'}", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        table.add_row(key, _shown(key, value, written), source, style=None if source == "default" else "bold")
    Console().print(table)


@config_app.command("path")
def path() -> None:
    """Print the config file llamarun reads ($LLAMARUN_CONFIG or the user config dir)."""
    from ..config import config_path

    file, explicit = config_path()
    state = "exists" if file.is_file() else "does not exist"
    typer.echo(f"{file}  ({state}{', from LLAMARUN_CONFIG' if explicit else ''})")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)
