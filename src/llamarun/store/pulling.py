"""Pull and create: validate everything, resolve the source, fetch the blob once, write the manifest.

Order of a pull: the name, the SHA-256 and the source text are validated
before any file-system or network call; then the source is resolved (a
manifest or metadata request for registries and hubs); then, holding the
blob's key lock (so concurrent pulls of one blob do one transfer), the blob is
fetched unless already stored, verified and committed, and the manifest is
written before the lock is released.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DigestMismatchError, GGUFFormatError, InvalidParameterError, ModelNotFoundError, StoreError
from ..ggufcheck import check_gguf
from .blobs import BlobInfo, ensure_free_space, hash_file
from .layout import StoreLayout
from .locks import key_lock
from .maintenance import _release_previous
from .names import ModelRef, parse_ref, parse_sha256
from .progress import ProgressFn, PullProgress, no_progress
from .records import MANIFEST_SCHEMA, StoredModel, get_model
from .sources import FetchContext, LocalFileSource, PullPlan, parse_source
from .sources.base import source_key
from .transfer import TransferPolicy

__all__ = ["PullOptions", "create_model", "pull_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullOptions:
    """What a pull may be told besides its source."""

    name: str | None = None  # store the model under this name[:tag] instead of the source's default
    sha256: str | None = None  # expected SHA-256 of the model file (required for split pip sources)
    insecure: bool = False  # allow plain-http Ollama registries
    ollama_models: str | os.PathLike[str] | None = None  # local Ollama models folder (ollama-local:)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _manifest(ref: ModelRef, plan: PullPlan, blob: BlobInfo, verified_by: str) -> dict[str, Any]:
    return {
        **plan.extra,
        "schema": MANIFEST_SCHEMA, "name": str(ref), "source": plan.source, "digest": f"sha256:{blob.digest}",
        "size": blob.size, "format": "gguf", "added": _now(), "verified": bool(verified_by),
        "verified_by": verified_by, "gguf": blob.gguf.summary(),
    }


def _stored_blob(layout: StoreLayout, hex_digest: str) -> BlobInfo | None:
    """The blob already in the store (caller holds its lock); a damaged one is deleted."""
    path = layout.blob_path(f"sha256:{hex_digest}")
    if not path.is_file():
        return None
    try:
        info = check_gguf(path)
    except GGUFFormatError as exc:
        logger.warning("deleting damaged blob %s: %s", path, exc)
        path.unlink(missing_ok=True)
        return None
    return BlobInfo(hex_digest, info.file_size, path, info)


def _current(layout: StoreLayout, ref: ModelRef) -> StoredModel | None:
    try:
        return get_model(layout, ref)
    except (ModelNotFoundError, StoreError):
        return None


def _fetch_and_record(ctx: FetchContext, plan: PullPlan, ref: ModelRef, sha: str | None,
                      verified_by: str) -> StoredModel:
    layout = ctx.layout
    previous = layout.read_manifest(ref)
    key = f"sha256-{sha}" if sha else source_key(plan.source)

    def waiting() -> None:
        ctx.emit(PullProgress(f"waiting for another pull of {sha[:12] if sha else plan.source[:60]}"))

    with key_lock(layout, key, on_wait=waiting):
        blob = _stored_blob(layout, sha) if sha else None
        if blob is None:
            if plan.size is not None:  # a typed error before any transfer when it cannot fit
                ensure_free_space(layout, plan.size, plan.source, reserve=ctx.policy.reserve_bytes)
            blob = plan.fetch(ctx, sha, key)
        else:
            ctx.emit(PullProgress(f"pulling {blob.digest[:12]}", f"sha256:{blob.digest}", blob.size, blob.size))
        if sha:
            ctx.emit(PullProgress("writing manifest"))
            layout.write_manifest(ref, _manifest(ref, plan, blob, verified_by))
    if not sha:
        with key_lock(layout, f"sha256-{blob.digest}"):
            if not blob.path.is_file():
                raise StoreError(f"the blob of {ref} was removed while it was being recorded; pull it again")
            ctx.emit(PullProgress("writing manifest"))
            layout.write_manifest(ref, _manifest(ref, plan, blob, verified_by))
    _release_previous(layout, previous, blob.digest)
    ctx.emit(PullProgress("success"))
    return get_model(layout, ref)


def _run_plan(ctx: FetchContext, plan: PullPlan, ref: ModelRef, want: str | None) -> StoredModel:
    if want and plan.sha256 and want != plan.sha256:
        raise DigestMismatchError(f"the given SHA-256 {want} differs from the {plan.verified_by} digest "
                                  f"{plan.sha256} of {plan.source}; nothing was downloaded")
    sha = plan.sha256 or want
    if plan.requires_sha256 and not sha:
        raise InvalidParameterError(f"{plan.source} is split over several packages: give the SHA-256 of the "
                                    "whole file (--sha256)", field="sha256")
    verified_by = plan.verified_by if plan.sha256 else ("--sha256" if want else "")
    current = _current(ctx.layout, ref)
    if sha and current is not None and not current.linked and current.digest == f"sha256:{sha}":
        ctx.emit(PullProgress("success"))
        logger.info("%s is already stored (sha256:%s)", ref, sha)
        return current
    return _fetch_and_record(ctx, plan, ref, sha, verified_by)


def pull_model(layout: StoreLayout, source: str, options: PullOptions = PullOptions(), *,
               policy: TransferPolicy | None = None, emit: ProgressFn = no_progress) -> StoredModel:
    """Pull ``source`` into the store and return the stored model (see :meth:`ModelStore.pull`)."""
    ref = parse_ref(options.name) if options.name is not None else None
    want = parse_sha256(options.sha256) if options.sha256 is not None else None
    spec = parse_source(source)
    ollama_models = Path(options.ollama_models).expanduser() if options.ollama_models is not None else None
    ctx = FetchContext(layout, policy or TransferPolicy(), emit, options.insecure, ollama_models)
    if not isinstance(spec, LocalFileSource):
        emit(PullProgress("pulling manifest"))
    plan = spec.plan(ctx)
    return _run_plan(ctx, plan, ref or parse_ref(plan.default_name), want)


def create_model(layout: StoreLayout, name: str, path: str | os.PathLike[str], *, link: bool = False,
                 policy: TransferPolicy | None = None, emit: ProgressFn = no_progress) -> StoredModel:
    """Add a local GGUF file as ``name``: copied into ``blobs/``, or with ``link`` referenced in place."""
    ref = parse_ref(name)
    if not isinstance(path, (str, os.PathLike)) or "\x00" in os.fspath(path):
        raise InvalidParameterError(f"invalid file path {str(path)[:200]!r}", field="path")
    spec = LocalFileSource.from_path(path)
    ctx = FetchContext(layout, policy or TransferPolicy(), emit)
    plan = spec.plan(ctx)  # checks the GGUF structure before anything is copied or recorded
    if not link:
        return _run_plan(ctx, plan, ref, None)
    return _link(ctx, plan, ref, spec.path)


def _link(ctx: FetchContext, plan: PullPlan, ref: ModelRef, path: Path) -> StoredModel:
    size = path.stat().st_size
    label = f"hashing {path.name[:40]}"
    hex_digest, size = hash_file(path, lambda n: ctx.emit(PullProgress(label, "", size, n)))
    info = check_gguf(path)
    previous = ctx.layout.read_manifest(ref)
    ctx.emit(PullProgress("writing manifest"))
    ctx.layout.write_manifest(ref, {
        "schema": MANIFEST_SCHEMA, "name": str(ref), "source": plan.source, "digest": f"sha256:{hex_digest}",
        "size": size, "format": "gguf", "added": _now(), "verified": False, "verified_by": "",
        "link": str(path), "gguf": info.summary(),
    })
    _release_previous(ctx.layout, previous, "")  # the name no longer uses a blob
    ctx.emit(PullProgress("success"))
    return get_model(ctx.layout, ref)
