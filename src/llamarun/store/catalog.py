"""The catalog shipped with the package: named models with a verified source and SHA-256."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["CatalogEntry", "load_catalog"]


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


def load_catalog() -> dict[str, CatalogEntry]:
    text = resources.files("llamarun.store").joinpath("catalog.json").read_text(encoding="utf-8")
    return {name: CatalogEntry(name=name, **entry) for name, entry in json.loads(text).items()}
