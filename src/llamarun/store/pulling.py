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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (
    DigestMismatchError,
    GGUFFormatError,
    InvalidParameterError,
    LlamarunError,
    ModelNotFoundError,
    NameInUseError,
    StoreError,
)
from ..gguf import check_gguf
from .blobs import BlobInfo, ensure_free_space, hash_file
from .layout import StoreLayout
from .catalog import load_catalog
from .locks import key_lock
from .maintenance import release_blob, release_previous, replaced_blob
from .names import ModelRef, normalize_digest, parse_ref, parse_sha256
from .progress import ProgressFn, PullProgress, no_progress
from .records import MANIFEST_SCHEMA, StoredModel, get_model, list_models, manifest_refs
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


def _check_replace(layout: StoreLayout, ref: ModelRef, plan: PullPlan, digest: str | None, explicit: bool) -> None:
    """Refuse to replace a model under a name the caller did not give (it came from a file or package name).

    Allowed: the caller named ``ref``; the name is free; it holds the same bytes (``digest`` known equal);
    it was pulled from this very source (an update of it).
    """
    previous = layout.read_manifest(ref)
    if explicit or previous is None or previous.get("source") == plan.source:
        return
    if digest is not None and previous.get("digest") == f"sha256:{digest}" and "link" not in previous:
        return
    raise NameInUseError(
        f'"{ref}" already exists (from {str(previous.get("source", "?"))[:200]}) and the name {ref.name!r} was '
        f"derived from {plan.source[:200]}, which is a different file: nothing was replaced. Pull it under another "
        f"name (llamarun pull {plan.source[:200]} --name NAME), or remove {ref} first (llamarun rm {ref}); if it is the "
        "same file, give its digest with --sha256"
    )


def _catalog_vouches(hex_digest: str) -> str:
    """``"catalog"`` when a catalog entry has this SHA-256 (the bytes are the ones the catalog names)."""
    return "catalog" if any(e.sha256 == hex_digest for e in load_catalog().values()) else ""


def _concurrent_result(layout: StoreLayout, source: str, since: float) -> BlobInfo | None:
    """The blob another pull of ``source`` committed while this one waited for its lock."""
    for model in list_models(layout):
        modified = model.modified.timestamp() if model.modified else 0.0
        if model.source == source and not model.linked and modified >= since:
            blob = _stored_blob(layout, normalize_digest(model.digest))
            if blob is not None:
                return blob
    return None


def _record(ctx: FetchContext, ref: ModelRef, plan: PullPlan, blob: BlobInfo, verified_by: str,
            explicit: bool) -> dict[str, Any] | None:
    """Write the manifest (caller holds the blob's lock); returns the manifest it replaced."""
    layout = ctx.layout
    if not blob.path.is_file():
        raise StoreError(f"the blob of {ref} was removed while it was being recorded; pull it again")
    _check_replace(layout, ref, plan, blob.digest, explicit)
    previous = layout.read_manifest(ref)
    ctx.emit(PullProgress("writing manifest"))
    layout.write_manifest(ref, _manifest(ref, plan, blob, verified_by))
    return previous


def _say_replaced(ctx: FetchContext, ref: ModelRef, previous: dict[str, Any] | None, new_hex: str) -> None:
    """After ``ref`` was re-pointed: delete its old blob only when no name uses it, and say which happened."""
    old = replaced_blob(previous, new_hex)
    if old is None:
        return
    if release_blob(ctx.layout, old):
        message = f"replaced {ref} (was sha256:{old[:12]}); its old blob was deleted: no other name used it"
    else:
        users = ", ".join(manifest_refs(ctx.layout).get(old, [])[:5]) or "another name"
        message = f"replaced {ref} (was sha256:{old[:12]}); its old blob is kept: {users} still uses it"
    logger.info("%s", message)
    ctx.emit(PullProgress(message))


def _fetch_and_record(ctx: FetchContext, plan: PullPlan, ref: ModelRef, sha: str | None,
                      verified_by: str, explicit: bool) -> StoredModel:
    layout = ctx.layout
    key = f"sha256-{sha}" if sha else source_key(plan.source)
    started = time.time() - 1.0  # (manifest mtimes may be coarser than this clock)
    waited: list[bool] = []

    def waiting() -> None:
        waited.append(True)
        ctx.emit(PullProgress(f"waiting for another pull of {sha[:12] if sha else plan.source[:60]}"))

    with key_lock(layout, key, on_wait=waiting):  # no digest known: the source's lock, held to the end
        blob = _stored_blob(layout, sha) if sha else (
            _concurrent_result(layout, plan.source, started) if waited else None)
        if blob is None:
            if plan.size is not None:  # a typed error before any transfer when it cannot fit
                ensure_free_space(layout, plan.size, plan.source, reserve=ctx.policy.reserve_bytes)
            blob = plan.fetch(ctx, sha, key)
        else:
            ctx.emit(PullProgress(f"pulling {blob.digest[:12]}", f"sha256:{blob.digest}", blob.size, blob.size))
        verified_by = verified_by or _catalog_vouches(blob.digest)
        try:
            if sha:
                previous = _record(ctx, ref, plan, blob, verified_by, explicit)
            else:
                with key_lock(layout, f"sha256-{blob.digest}"):
                    previous = _record(ctx, ref, plan, blob, verified_by, explicit)
        except NameInUseError:
            release_blob(layout, blob.digest)  # fetched for nothing: gone unless a name uses it
            raise
    _say_replaced(ctx, ref, previous, blob.digest)
    ctx.emit(PullProgress("success"))
    return get_model(layout, ref)


def _run_plan(ctx: FetchContext, plan: PullPlan, ref: ModelRef, want: str | None,
              explicit: bool = True) -> StoredModel:
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
    _check_replace(ctx.layout, ref, plan, sha, explicit)  # before any transfer
    return _fetch_and_record(ctx, plan, ref, sha, verified_by, explicit)


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
    try:
        plan = spec.plan(ctx)
        explicit = ref is not None or not plan.name_derived
        return _run_plan(ctx, plan, ref or parse_ref(plan.default_name), want, explicit)
    except LlamarunError:
        raise
    except Exception as exc:  # a bug or a library's surprise: one typed error, never a raw traceback
        logger.exception("pull of %s failed unexpectedly", source[:200])
        raise StoreError(f"the pull of {source[:200]} failed unexpectedly ({type(exc).__name__}: {exc}); "
                         "nothing was stored. Details are in the log (--debug)") from exc


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
    before = path.stat()
    size = before.st_size
    label = f"hashing {path.name[:40]}"
    hex_digest, size = hash_file(path, lambda n: ctx.emit(PullProgress(label, "", size, n)))
    info = check_gguf(path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or after.st_size != size:
        raise StoreError(f"{path} changed while it was being hashed; nothing was recorded: try again")
    previous = ctx.layout.read_manifest(ref)
    ctx.emit(PullProgress("writing manifest"))
    ctx.layout.write_manifest(ref, {
        "schema": MANIFEST_SCHEMA, "name": str(ref), "source": plan.source, "digest": f"sha256:{hex_digest}",
        "size": size, "format": "gguf", "added": _now(), "verified": False, "verified_by": "",
        "link": str(path), "link_mtime_ns": after.st_mtime_ns, "gguf": info.summary(),
    })
    release_previous(ctx.layout, previous, "")  # the name no longer uses a blob
    ctx.emit(PullProgress("success"))
    return get_model(ctx.layout, ref)
