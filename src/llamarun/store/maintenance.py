"""Removing, copying, verifying and garbage-collecting stored models.

A blob is deleted only while holding its key lock and only when no manifest
uses it, so a concurrent pull of the same blob (which holds the lock until its
manifest is written) never loses it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidNameError, ModelNotFoundError, StoreError
from .blobs import hash_file
from .layout import StoreLayout, key_of
from .locks import key_lock, remove_lock_file, try_key_lock
from .names import ModelRef, normalize_digest
from .progress import ProgressFn, PullProgress, no_progress
from .records import StoredModel, get_model, list_models, load_model, manifest_refs

__all__ = [
    "BlobCheck",
    "GCReport",
    "RemoveResult",
    "collect_garbage",
    "copy_model",
    "release_blob",
    "release_previous",
    "remove_model",
    "replaced_blob",
    "verify_store",
]

logger = logging.getLogger(__name__)

_STALE_MANIFEST_TEMP = 3600.0  # seconds


@dataclass(frozen=True)
class RemoveResult:
    name: str
    digest: str
    blob_deleted: bool


@dataclass(frozen=True)
class BlobCheck:
    """The outcome of re-hashing one blob (or linked file)."""

    digest: str  # "sha256:<hex>" the file should have
    path: Path
    size: int
    status: str  # "ok", "corrupt", "deleted" (corrupt and removed), "missing"
    names: tuple[str, ...]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class GCReport:
    partials_removed: int
    blobs_removed: tuple[str, ...]
    bytes_freed: int
    locks_removed: int = 0  # stale partial/*.lock files (empty)


def release_blob(layout: StoreLayout, hex_digest: str) -> bool:
    """Delete blob ``hex_digest`` if no manifest uses it; ``True`` when it was deleted."""
    with key_lock(layout, f"sha256-{hex_digest}"):
        if hex_digest in manifest_refs(layout):
            return False
        path = layout.blob_path(f"sha256:{hex_digest}")
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        logger.info("deleted unused blob sha256:%s", hex_digest)
        return True


def remove_model(layout: StoreLayout, ref: ModelRef) -> RemoveResult:
    """Delete a model's manifest, and its blob when no other name uses it."""
    manifest = layout.read_manifest(ref)
    if manifest is None:
        raise ModelNotFoundError(f'model "{ref}" not found')
    try:
        model: StoredModel | None = load_model(layout, ref, manifest, layout.manifest_path(ref))
    except (InvalidNameError, StoreError) as exc:
        logger.warning("removing broken manifest of %s: %s", ref, exc)
        model = None
    layout.remove_manifest(ref)
    if model is None or model.linked:
        return RemoveResult(str(ref), model.digest if model else "", False)
    return RemoveResult(str(ref), model.digest, release_blob(layout, normalize_digest(model.digest)))


def copy_model(layout: StoreLayout, src: ModelRef, dst: ModelRef) -> StoredModel:
    """Give a stored model a second name (same blob, no bytes copied)."""
    model = get_model(layout, src)
    if src == dst:
        return model
    previous = layout.read_manifest(dst)
    manifest = {**model.manifest, "name": str(dst), "copied_from": str(src),
                "added": dt.datetime.now(dt.timezone.utc).isoformat()}
    hex_digest = normalize_digest(model.digest)
    if model.linked:
        layout.write_manifest(dst, manifest)
    else:
        with key_lock(layout, f"sha256-{hex_digest}"):
            if not model.path.is_file():
                raise ModelNotFoundError(f'the blob of "{src}" disappeared while copying it')
            layout.write_manifest(dst, manifest)
    release_previous(layout, previous, hex_digest)
    return get_model(layout, dst)


def replaced_blob(previous: dict | None, keep_hex: str) -> str | None:
    """The blob digest a name's previous manifest named, when an overwrite leaves it behind
    (None for no previous manifest, a linked file, the same blob or a damaged digest)."""
    if not previous or "link" in previous:
        return None
    try:
        old = normalize_digest(str(previous.get("digest", "")))
    except InvalidNameError:
        return None
    return old if old != keep_hex else None


def release_previous(layout: StoreLayout, previous: dict | None, keep_hex: str) -> None:
    """After a name was overwritten: delete the blob it used to name if nothing else uses it."""
    old = replaced_blob(previous, keep_hex)
    if old is not None:
        release_blob(layout, old)


def _check_file(path: Path, hex_digest: str, names: tuple[str, ...], emit: ProgressFn) -> BlobCheck:
    digest = f"sha256:{hex_digest}"
    try:
        size = path.stat().st_size
        emit(PullProgress(f"verifying {hex_digest[:12]}", digest, size, 0))
        actual, size = hash_file(path, lambda n: emit(PullProgress(f"verifying {hex_digest[:12]}", digest, size, n)))
    except FileNotFoundError:
        return BlobCheck(digest, path, 0, "missing", names, "the file is missing")
    except OSError as exc:
        return BlobCheck(digest, path, 0, "corrupt", names, f"unreadable: {exc.strerror}")
    if actual == hex_digest:
        return BlobCheck(digest, path, size, "ok", names)
    return BlobCheck(digest, path, size, "corrupt", names, f"its bytes hash to sha256:{actual}")


def verify_store(layout: StoreLayout, *, delete: bool = False, emit: ProgressFn = no_progress) -> list[BlobCheck]:
    """Re-hash every blob and linked file; with ``delete``, remove corrupt blobs (never linked files)."""
    refs = manifest_refs(layout)
    results = []
    seen = set()
    for hex_digest, path in layout.iter_blobs():
        seen.add(hex_digest)
        check = _check_file(path, hex_digest, tuple(refs.get(hex_digest, ())), emit)
        if check.status == "corrupt" and delete:
            with key_lock(layout, f"sha256-{hex_digest}"):
                path.unlink(missing_ok=True)
            check = BlobCheck(check.digest, path, check.size, "deleted", check.names, check.detail)
        results.append(check)
    for hex_digest, names in refs.items():
        if hex_digest not in seen:
            results.append(BlobCheck(f"sha256:{hex_digest}", layout.blob_path(f"sha256:{hex_digest}"), 0,
                                     "missing", tuple(names), "the blob is missing: pull the model again"))
    for model in list_models(layout):
        if model.linked:
            results.append(_check_linked(model, emit))
    return results


def _check_linked(model: StoredModel, emit: ProgressFn) -> BlobCheck:
    """A linked file is checked like a blob but never deleted: the report says what to do instead."""
    check = _check_file(model.path, normalize_digest(model.digest), (model.name,), emit)
    if check.status == "missing":
        detail = f"the linked file {model.path} is missing: remove the name with `llamarun rm {model.name}`"
    elif check.status == "corrupt":
        detail = (f"the linked file {model.path} changed ({check.detail}); linked files are never deleted: "
                  f"`llamarun rm {model.name}`, or `llamarun create {model.name} --from {model.path} --link` again")
    else:
        return check
    return BlobCheck(check.digest, check.path, check.size, check.status, check.names, detail)


def _entry_size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _remove_entry(path: Path) -> int:
    size = _entry_size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return size


def _gc_partials(layout: StoreLayout) -> tuple[int, int]:
    by_key: dict[str, list[Path]] = {}
    if layout.partials.is_dir():
        for entry in layout.partials.iterdir():
            key = key_of(entry.name)
            if key is not None and not entry.name.endswith(".lock"):
                by_key.setdefault(key, []).append(entry)
    removed = freed = 0
    for key, entries in sorted(by_key.items()):
        with try_key_lock(layout, key) as free:
            if not free:
                logger.info("keeping partial files of %s: a pull is using them", key)
                continue
            for entry in entries:
                freed += _remove_entry(entry)
                removed += 1
    return removed, freed


def _gc_lock_files(layout: StoreLayout) -> int:
    """Delete the lock files no pull holds (a held one is kept; a pull waiting on a deleted one re-locks)."""
    if not layout.partials.is_dir():
        return 0
    return sum(remove_lock_file(entry) for entry in sorted(layout.partials.glob("*.lock"))
               if key_of(entry.name) is not None)


def _gc_manifest_temps(layout: StoreLayout) -> int:
    freed = 0
    now = time.time()
    for folder, _dirs, files in os.walk(layout.manifests, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if name.startswith(".manifest-") and now - path.lstat().st_mtime > _STALE_MANIFEST_TEMP:
                freed += _remove_entry(path)
    return freed


def collect_garbage(layout: StoreLayout) -> GCReport:
    """Delete stale partial downloads and lock files (no pull holds their lock) and blobs no manifest uses."""
    removed, freed = _gc_partials(layout)
    freed += _gc_manifest_temps(layout) if layout.manifests.is_dir() else 0
    blobs = []
    used = manifest_refs(layout)
    for hex_digest, path in list(layout.iter_blobs()):
        if hex_digest in used:
            continue
        with try_key_lock(layout, f"sha256-{hex_digest}") as free:
            if free and hex_digest not in manifest_refs(layout):
                freed += _remove_entry(path)
                blobs.append(f"sha256:{hex_digest}")
    return GCReport(removed, tuple(blobs), freed, _gc_lock_files(layout))
