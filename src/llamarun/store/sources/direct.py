"""Sources named by their scheme (``pip:``, ``http(s)://``, ``hf://``, ``ollama://``, ``ollama-local:``).

Both :func:`llamarun.store.sources.parse_source` and a catalog entry's own source
(:class:`~llamarun.store.sources.catalog.CatalogSource`) parse through here, so the
catalog source does not import the package that imports it.
"""

from __future__ import annotations

from .base import SourceSpec
from .hf import parse_hf_source
from .ollama import parse_ollama_local, parse_ollama_registry
from .pip import parse_pip_source
from .url import parse_url_source

__all__ = ["parse_direct_source"]


def parse_direct_source(text: object) -> SourceSpec | None:
    """The spec for a source text with a scheme, or None when it has none (a catalog name)."""
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
    return None
