"""``llamarun version``, ``llamarun ps`` and ``llamarun stop``."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

VERSION_EXAMPLES = """
Examples:

  llamarun version            # llamarun, llama-cpp-python, Python, llama.cpp's backends and CPU features

  llamarun version --json     # the same, for scripts and bug reports
"""

PS_EXAMPLES = """
Examples:

  llamarun ps                                # models loaded by the server on 127.0.0.1:11434

  llamarun ps --host http://10.0.0.5:11434   # another server

  llamarun ps --json                         # the server's answer, for scripts
"""


STOP_EXAMPLES = """
Examples:

  llamarun stop smollm2                              # unload it from the server on 127.0.0.1:11434

  llamarun stop smollm2 --host http://10.0.0.5:11434 --api-key-file ~/.llamarun-key
"""

API_KEY_HELP = "Key for a server that requires one (also LLAMARUN_API_KEY; prefer --api-key-file)."


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _versions() -> dict[str, Any]:
    import llamarun

    info: dict[str, Any] = {
        "llamarun": llamarun.__version__,
        "llama_cpp_python": _package_version("llama_cpp_python"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "llama_cpp_system_info": None,
        "native_draw": None,
        "backends": {},
    }
    from ..engine import backend_status

    info["backends"] = {name: error or "available" for name, error in backend_status().items()}
    try:
        from ..engine import native_draw, system_info

        info["native_draw"] = native_draw()
        info["llama_cpp_system_info"] = system_info()
    except Exception as exc:  # noqa: BLE001 - a broken llama.cpp build must not hide the versions
        info["llama_cpp_error"] = f"{type(exc).__name__}: {exc}"
    return info


def version(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the versions of llamarun, llama-cpp-python and Python, and llama.cpp's build info."""
    info = _versions()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"llamarun {info['llamarun']}")
    typer.echo(f"llama-cpp-python {info['llama_cpp_python'] or 'not installed'}")
    typer.echo(f"python {info['python']} ({info['platform']})")
    typer.echo("backends: " + "; ".join(f"{name} {state}" for name, state in info["backends"].items()))
    if info["llama_cpp_system_info"] is not None:
        typer.echo(f"llama.cpp {info['llama_cpp_system_info']}")
        typer.echo(f"sampling draw in {'C' if info['native_draw'] else 'numpy (the C draw was not built)'}")
    else:
        typer.echo(f"llama.cpp unavailable: {info.get('llama_cpp_error')}")


def _until(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return "-"
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    if seconds > 10 * 365 * 86400:
        return "Forever"
    if seconds <= 0:
        return "now"
    for unit, span in (("hour", 3600), ("minute", 60)):
        if seconds >= span:
            n = int(seconds // span)
            return f"{n} {unit}{'s' if n != 1 else ''} from now"
    return f"{int(seconds)} seconds from now"


def _processor(size: Any, vram: Any) -> str:
    if not isinstance(size, int) or size <= 0 or not isinstance(vram, int) or vram <= 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    gpu = round(100 * vram / size)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"


def _ps_rows(models: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    from ..units import format_bytes

    rows = []
    for m in models:
        size = m.get("size")
        digest = str(m.get("digest") or "").removeprefix("sha256:")[:12] or "-"
        ctx = m.get("context_length")
        rows.append((str(m.get("name") or m.get("model") or "?"), digest,
                     format_bytes(size) if isinstance(size, int) else "-", _processor(size, m.get("size_vram")),
                     str(ctx) if ctx else "-", _until(m.get("expires_at"))))
    return rows


def ps(
    host: Optional[str] = typer.Option(None, "--host", help="Server URL (default: the configured host and port)."),
    as_json: bool = typer.Option(False, "--json", help="Print the server's JSON answer."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help=API_KEY_HELP),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", help="File whose first line is the key."),
) -> None:
    """List the models a running `llamarun serve` has loaded."""
    from .ollama_client import OllamaClient, client_api_key, default_host

    with OllamaClient(host or default_host(), read_timeout=10.0,
                      api_key=client_api_key(api_key, api_key_file)) as client:
        data = client.ps()
    models = data.get("models") if isinstance(data, dict) else None
    models = [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []
    if as_json:
        typer.echo(json.dumps({"models": models}, indent=2))
        return
    table = [("NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"), *_ps_rows(models)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _loaded_names(models: list[dict[str, Any]]) -> set[str]:
    names = {str(m.get(key)) for m in models for key in ("name", "model") if m.get(key)}
    return names | {n.removesuffix(":latest") for n in names}


def stop(
    model: str = typer.Argument(..., help="The loaded model to unload (as `llamarun ps` names it)."),
    host: Optional[str] = typer.Option(None, "--host", help="Server URL (default: the configured host and port)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help=API_KEY_HELP),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", help="File whose first line is the key."),
) -> None:
    """Unload a model from a running `llamarun serve` now (its memory is freed once its requests finish)."""
    from ..errors import ModelNotFoundError
    from .ollama_client import OllamaClient, client_api_key, default_host

    with OllamaClient(host or default_host(), read_timeout=30.0,
                      api_key=client_api_key(api_key, api_key_file)) as client:
        data = client.ps()
        models = data.get("models") if isinstance(data, dict) else None
        loaded = _loaded_names([m for m in models if isinstance(m, dict)] if isinstance(models, list) else [])
        if model not in loaded:
            shown = ", ".join(sorted(n for n in loaded if not n.endswith(":latest"))) or "none"
            raise ModelNotFoundError(f'model "{model}" is not loaded on {client.base_url} (loaded: {shown}); '
                                     "see `llamarun ps`")
        client.unload(model)
    typer.echo(f"stopped {model}")


def register(app: typer.Typer) -> None:
    app.command(help="Print versions and llama.cpp build information.", epilog=VERSION_EXAMPLES)(version)
    app.command(help="List the models loaded by a running server.", epilog=PS_EXAMPLES)(ps)
    app.command(help="Unload a model from a running server now.", epilog=STOP_EXAMPLES)(stop)
