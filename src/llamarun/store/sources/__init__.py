"""Where model bytes come from: the catalog, pip packages, URLs, Hugging Face, Ollama, local files.

:func:`parse_source` validates a source text without touching the network or
the disk; the returned spec's ``plan`` resolves it (manifests, metadata).
"""

from __future__ import annotations

from ..names import parse_ref
from .base import FetchContext, PullPlan, SourceSpec
from .catalog import CatalogSource
from .direct import parse_direct_source
from .hf import HfSource
from .local import LocalFileSource
from .ollama import OllamaLocalSource, OllamaRegistrySource
from .pip import PipSource
from .url import UrlSource

__all__ = [
    "CatalogSource",
    "FetchContext",
    "HfSource",
    "LocalFileSource",
    "OllamaLocalSource",
    "OllamaRegistrySource",
    "PipSource",
    "PullPlan",
    "SourceSpec",
    "UrlSource",
    "parse_source",
]


def parse_source(text: str) -> SourceSpec:
    """Validate a pull source (``pip:``, ``http(s)://``, ``hf://``, ``ollama://``, ``ollama-local:``, catalog name)."""
    spec = parse_direct_source(text)
    if spec is not None:
        return spec
    return CatalogSource(parse_ref(text))
