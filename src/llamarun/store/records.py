"""Stored models as the library returns them, read back from their manifests."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidNameError, ModelNotFoundError, StoreError
from ..ggufcheck import GGUFInfo
from .layout import StoreLayout
from .names import ModelRef, normalize_digest

__all__ = ["ModelDetails", "StoredModel", "get_model", "list_models", "load_model", "manifest_refs"]

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class StoredModel:
    """A model in the store: its name, the file llama.cpp loads, and its manifest."""

    ref: ModelRef
    path: Path  # the blob (or, for ``create --link``, the referenced file)
    digest: str  # "sha256:<hex>"
    size: int
    manifest: dict[str, Any] = field(repr=False)
    modified: dt.datetime | None = None  # when the manifest was last written

    @property
    def name(self) -> str:
        return str(self.ref)

    @property
    def source(self) -> str:
        return str(self.manifest.get("source", ""))

    @property
    def linked(self) -> bool:
        return "link" in self.manifest

    @property
    def verified(self) -> bool:
        return bool(self.manifest.get("verified", "verified_by" not in self.manifest))

    @property
    def facts(self) -> dict[str, Any]:
        """GGUF facts recorded at pull time (architecture, parameters, quantization, ...)."""
        facts = self.manifest.get("gguf")
        return facts if isinstance(facts, dict) else {}

    @property
    def added(self) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(str(self.manifest.get("added")))
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "digest": self.digest, "size": self.size, "path": str(self.path),
            "source": self.source, "linked": self.linked, "verified": self.verified,
            "added": self.manifest.get("added"),
            "modified": self.modified.isoformat() if self.modified else None, "details": self.facts,
        }


@dataclass(frozen=True)
class ModelDetails:
    """What ``show`` prints: the stored model and the facts read from its GGUF header."""

    model: StoredModel
    gguf: GGUFInfo

    def to_json(self, *, verbose: bool = False) -> dict[str, Any]:
        data = self.model.to_json()
        data["details"] = self.gguf.summary()
        data["details"]["chat_template"] = self.gguf.chat_template
        for key in ("template", "system", "license", "params"):
            value = self.model.manifest.get("ollama", {}).get(key) if isinstance(
                self.model.manifest.get("ollama"), dict) else None
            if value is not None:
                data.setdefault("ollama", {})[key] = value
        if verbose:
            data["metadata"] = self.gguf.metadata_json()
        return data


def _modified(path: Path) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
    except OSError:
        return None


def load_model(layout: StoreLayout, ref: ModelRef, manifest: dict[str, Any], manifest_path: Path) -> StoredModel:
    """A :class:`StoredModel` from a manifest; its digest and link are validated first."""
    digest = str(manifest.get("digest", ""))
    normalize_digest(digest)  # InvalidNameError for anything but sha256:<64 hex>
    link = manifest.get("link")
    if link is not None:
        if not isinstance(link, str) or not Path(link).is_absolute() or "\x00" in link:
            raise StoreError(f"manifest of {ref} has an invalid link {str(link)[:200]!r}")
        path = Path(link)
    else:
        path = layout.blob_path(digest)
    size = manifest.get("size", 0)
    size = size if isinstance(size, int) and size >= 0 else 0
    return StoredModel(ref, path, digest, size, manifest, _modified(manifest_path))


def manifest_refs(layout: StoreLayout) -> dict[str, list[str]]:
    """Hex digest -> names of the manifests whose blob it is (linked models excluded)."""
    refs: dict[str, list[str]] = {}
    for ref, path in layout.iter_manifests():
        try:
            manifest = layout.read_manifest(ref) or {}
            if "link" not in manifest:
                refs.setdefault(normalize_digest(str(manifest.get("digest", ""))), []).append(str(ref))
        except (StoreError, InvalidNameError) as exc:
            logger.warning("skipping manifest %s: %s", path, exc)
    return refs


def list_models(layout: StoreLayout) -> list[StoredModel]:
    """Every model with a readable manifest, sorted by name (broken manifests are logged and skipped)."""
    models = []
    for ref, path in layout.iter_manifests():
        try:
            manifest = layout.read_manifest(ref)
            if manifest is not None:
                models.append(load_model(layout, ref, manifest, path))
        except (StoreError, InvalidNameError) as exc:
            logger.warning("skipping manifest %s: %s", path, exc)
    return sorted(models, key=lambda m: m.name)


def get_model(layout: StoreLayout, ref: ModelRef) -> StoredModel:
    """The stored model ``ref``; :class:`ModelNotFoundError` if it (or its file) is absent.

    A linked file whose size changed, or whose modification time changed and whose bytes no
    longer hash to the recorded digest, is refused with a :class:`StoreError`.
    """
    manifest = layout.read_manifest(ref)
    if manifest is None:
        raise ModelNotFoundError(f'model "{ref}" not found, try pulling it first: llamarun pull {ref.name}')
    model = load_model(layout, ref, manifest, layout.manifest_path(ref))
    if not model.path.is_file():
        what = f"its linked file {model.path} is missing" if model.linked else "its blob is missing: pull it again"
        raise ModelNotFoundError(f'model "{ref}" has a manifest but {what}')
    if model.linked:
        _check_link(layout, model)
    return model


def _check_link(layout: StoreLayout, model: StoredModel) -> None:
    """A linked file must still be the one that was added: same size, and same digest when its mtime moved."""
    stat = model.path.stat()
    again = f"run `llamarun create {model.ref} --from {model.path} --link` again (or `llamarun rm {model.ref}`)"
    if stat.st_size != model.size:
        raise StoreError(f'the file linked as "{model.ref}" ({model.path}) changed size since it was added '
                         f"({model.size} -> {stat.st_size} bytes); {again}")
    recorded = model.manifest.get("link_mtime_ns")
    if not isinstance(recorded, int) or recorded == stat.st_mtime_ns:
        return
    from .blobs import hash_file  # deferred: only when the file was touched

    logger.info("the file linked as %s was modified since it was added: re-hashing it", model.ref)
    actual, _ = hash_file(model.path)
    if f"sha256:{actual}" != model.digest:
        raise StoreError(f'the file linked as "{model.ref}" ({model.path}) changed since it was added: its '
                         f"SHA-256 is now sha256:{actual}, not {model.digest}; {again}")
    layout.write_manifest(model.ref, {**model.manifest, "link_mtime_ns": stat.st_mtime_ns})  # same bytes
