"""A GGUF file on this machine: copied into the store, or referenced where it is (``--link``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import LlamarunError, ModelLoadError
from ...gguf import check_gguf
from ..blobs import BlobInfo, ingest_stream, iter_file
from ..names import derive_name, normalize_digest
from ..progress import PullProgress
from .base import FetchContext, PullPlan

__all__ = ["LocalFileSource"]


@dataclass(frozen=True)
class LocalFileSource:
    """A local file, checked as GGUF before anything is copied."""

    path: Path

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> LocalFileSource:
        return cls(Path(path).expanduser().resolve())

    def plan(self, ctx: FetchContext) -> PullPlan:
        info = check_gguf(self.path)  # typed error (missing, not a file, not GGUF) before any copy
        stem = self.path.name[:-5] if self.path.name.lower().endswith(".gguf") else self.path.name
        size = info.file_size

        def fetch(fctx: FetchContext, expected: str | None, key: str) -> BlobInfo:
            label = f"copying {self.path.name[:40]}"
            try:
                return ingest_stream(
                    fctx.layout, iter_file(self.path), expected_sha256=expected, expected_size=size, key=key,
                    what=str(self.path), progress=lambda n: fctx.emit(PullProgress(label, "", size, n)),
                )
            except LlamarunError:  # DiskFullError is also an OSError: keep it as it is
                raise
            except OSError as exc:
                raise ModelLoadError(f"cannot read {self.path}: {exc.strerror or exc}", path=str(self.path)) from None

        in_store = self.path.parent == ctx.layout.blobs and self.path.name.startswith("sha256-")
        if in_store:  # a blob of this store (Ollama's /api/create names one): no copy, same digest
            return PullPlan(source=f"blob:{self.path.name}", default_name=derive_name(stem), fetch=fetch, size=size,
                            sha256=normalize_digest(self.path.name), verified_by="store blob")
        return PullPlan(source=f"file:{self.path}", default_name=derive_name(stem), fetch=fetch, size=size)
