"""The catalog shipped with the package: named models with a verified source and SHA-256."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["CatalogEntry", "find_entry", "load_catalog"]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    source: str
    sha256: str
    size: int
    description: str = ""
    parameters: str = ""
    quantization: str = ""
    license: str = ""
    # True for registry entries: ``size`` is the library's published figure, for ``hw --recommend``
    # only; a pull takes the digest and size from the registry manifest and verifies every byte.
    size_approximate: bool = False
    # Sampling its authors recommend (Ollama parameter names), used where a request gives none,
    # below a Modelfile's: for every stored copy of this file, whatever its name.
    defaults: Mapping[str, Any] = field(default_factory=dict)


def load_catalog() -> dict[str, CatalogEntry]:
    """Catalog names (``smollm2``, ``llama3.2:1b``, ...) -> entries; keys starting with ``_`` are notes."""
    text = resources.files("llamarun.store").joinpath("catalog.json").read_text(encoding="utf-8")
    return {name: CatalogEntry(name=name, **entry) for name, entry in json.loads(text).items()
            if not name.startswith("_")}


def find_entry(catalog: dict[str, CatalogEntry], name: str, tag: str) -> CatalogEntry | None:
    """The entry for ``name:tag`` (``llama3.2:1b``), or for ``name`` alone when the tag is ``latest``."""
    entry = catalog.get(f"{name}:{tag}")
    if entry is None and tag == "latest":
        entry = catalog.get(name)
    return entry
