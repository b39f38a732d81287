"""On-disk layout of the store: ``blobs/sha256-<hex>``, ``manifests/<name>/<tag>.json``, ``partial/``.

``partial/`` holds work in progress, every entry named after a *key*
(``sha256-<hex>`` for a blob whose digest is known, ``url-<hex>`` otherwise):
``<key>.partial`` (resumable download), ``<key>.json`` (what the partial was
downloaded from), ``<key>.lock`` (the file lock of whoever works on the key)
and ``<key>.<random>.tmp`` (temporary files and folders).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidNameError, StoreError
from .names import ModelRef, normalize_digest, parse_ref

__all__ = ["StoreLayout", "key_of"]

_MAX_MANIFEST_BYTES = 1 << 20
_KEY = re.compile(r"^(?:sha256|url)-[0-9a-f]{16,64}$")


def key_of(name: str) -> str | None:
    """The key a ``partial/`` entry belongs to, or ``None`` for foreign files."""
    key = name.split(".", 1)[0]
    return key if _KEY.fullmatch(key) else None


class StoreLayout:
    """Paths inside one store root; every path is checked to stay inside it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.partials = self.root / "partial"

    def ensure(self) -> None:
        for folder in (self.blobs, self.manifests, self.partials):
            folder.mkdir(parents=True, exist_ok=True)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InvalidNameError(f"path {path} would leave the store root {self.root}")
        return path

    # -- blobs ------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self._inside(self.blobs / f"sha256-{normalize_digest(digest)}")

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        """``(hex digest, path)`` of every well-named blob file."""
        if not self.blobs.is_dir():
            return
        for entry in sorted(os.scandir(self.blobs), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                yield normalize_digest(entry.name), Path(entry.path)
            except InvalidNameError:
                continue

    # -- partials and locks -----------------------------------------------

    def _keyed(self, key: str, suffix: str) -> Path:
        if not _KEY.fullmatch(key):
            raise InvalidNameError(f"invalid store key {key[:80]!r}")
        return self._inside(self.partials / f"{key}{suffix}")

    def partial_path(self, key: str) -> Path:
        return self._keyed(key, ".partial")

    def partial_meta(self, key: str) -> Path:
        return self._keyed(key, ".json")

    def lock_path(self, key: str) -> Path:
        return self._keyed(key, ".lock")

    def temp_file(self, key: str) -> Path:
        """A new, unique, empty temporary file for ``key`` inside ``partial/``."""
        self._keyed(key, "")
        self.ensure()
        fd, name = tempfile.mkstemp(prefix=f"{key}.", suffix=".tmp", dir=self.partials)
        os.close(fd)
        return Path(name)

    def temp_dir(self, key: str) -> tempfile.TemporaryDirectory[str]:
        self._keyed(key, "")
        self.ensure()
        return tempfile.TemporaryDirectory(prefix=f"{key}.", suffix=".tmp", dir=self.partials)

    # -- manifests --------------------------------------------------------

    def manifest_path(self, ref: ModelRef) -> Path:
        return self._inside(self.manifests / ref.name / f"{ref.tag}.json")

    def iter_manifests(self) -> Iterator[tuple[ModelRef, Path]]:
        """Every manifest whose path spells a valid ``name:tag`` (others are skipped)."""
        if not self.manifests.is_dir():
            return
        for folder, dirs, files in os.walk(self.manifests, followlinks=False):
            dirs.sort()
            rel = Path(folder).relative_to(self.manifests)
            for file in sorted(files):
                if not file.endswith(".json") or file.startswith("."):
                    continue
                try:
                    ref = parse_ref(f"{rel.as_posix()}:{file[:-5]}")
                except InvalidNameError:
                    continue
                if ref.name == rel.as_posix():
                    yield ref, Path(folder) / file

    def read_manifest(self, ref: ModelRef) -> dict[str, Any] | None:
        path = self.manifest_path(ref)
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_MANIFEST_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if len(data) > _MAX_MANIFEST_BYTES:
            raise StoreError(f"manifest {path} is larger than {_MAX_MANIFEST_BYTES} bytes")
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"manifest {path} is not valid JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise StoreError(f"manifest {path} is not a JSON object")
        return manifest

    def write_manifest(self, ref: ModelRef, manifest: dict[str, Any]) -> Path:
        """Atomically write a manifest (temp file in the same folder, then rename)."""
        path = self.manifest_path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    def remove_manifest(self, ref: ModelRef) -> bool:
        """Delete a manifest and the folders it leaves empty; ``False`` if it did not exist."""
        path = self.manifest_path(ref)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        folder = path.parent
        while folder != self.manifests and self.manifests in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
        return True
