"""What every source gives the puller: a plan naming the blob and how to fetch it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..blobs import BlobInfo
from ..layout import StoreLayout
from ..progress import ProgressFn, no_progress
from ..transfer import TransferPolicy

__all__ = ["FetchContext", "FetchFn", "PullPlan", "SourceSpec", "pull_label", "source_key"]


@dataclass(frozen=True)
class FetchContext:
    """Everything a source needs to resolve and fetch: the store, the policy, the progress sink."""

    layout: StoreLayout
    policy: TransferPolicy = field(default_factory=TransferPolicy)
    emit: ProgressFn = no_progress
    insecure: bool = False  # allow plain-http registries (ollama://)
    ollama_models: Path | None = None  # a local Ollama models folder to import from


# fetch(context, expected sha256 hex or None, lock key) -> the committed blob
FetchFn = Callable[[FetchContext, "str | None", str], BlobInfo]


@dataclass(frozen=True)
class PullPlan:
    """A resolved source: which blob it is (when known up front) and how to fetch it."""

    source: str  # canonical text recorded in the manifest
    default_name: str  # name[:tag] used when the caller gives none
    fetch: FetchFn
    sha256: str | None = None  # expected digest (hex) when the source states one
    size: int | None = None  # expected size when the source states one
    verified_by: str = ""  # what vouches for sha256: "catalog", "Hugging Face LFS", ...
    requires_sha256: bool = False  # refuse to fetch unless a SHA-256 is known (split files)
    name_derived: bool = False  # default_name comes from a file or package name, not one the user typed
    extra: Mapping[str, Any] = field(default_factory=dict)  # recorded in the manifest


class SourceSpec(Protocol):
    """A parsed, validated source text; ``plan`` may use the network (manifests, metadata)."""

    def plan(self, ctx: FetchContext) -> PullPlan: ...


def source_key(source: str) -> str:
    """The lock/partial key of a source whose digest is not known up front."""
    return "url-" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:40]


def pull_label(sha256: str | None, fallback: str) -> str:
    """Ollama-style progress status: ``pulling <first 12 hex digits>``."""
    return f"pulling {sha256[:12]}" if sha256 else f"pulling {fallback[:40]}"
