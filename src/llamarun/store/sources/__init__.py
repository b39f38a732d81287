"""Where model bytes come from: the catalog, pip packages, URLs, Hugging Face, Ollama, local files.

:func:`parse_source` validates a source text without touching the network or
the disk; the returned spec's ``plan`` resolves it (manifests, metadata).
"""

from __future__ import annotations

from ..names import parse_ref
from .base import FetchContext, PullPlan, SourceSpec
from .catalog import CatalogSource
from .hf import HfSource, parse_hf_source
from .local import LocalFileSource
from .ollama import OllamaLocalSource, OllamaRegistrySource, parse_ollama_local, parse_ollama_registry
from .pip import PipSource, parse_pip_source
from .url import UrlSource, parse_url_source

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
    if isinstance(text, str):
        if text.startswith("pip:"):
            return parse_pip_source(text)
        if text.startswith(("https://", "http://")):
            return parse_url_source(text)
        if text.startswith("hf://"):
            return parse_hf_source(text)
        if text.startswith("ollama://"):
            return parse_ollama_registry(text)
        if text.startswith("ollama-local:"):
            return parse_ollama_local(text)
    return CatalogSource(parse_ref(text))
