"""Hugging Face: ``hf://owner/repo/path/file.gguf[@revision]`` through ``huggingface_hub``.

``huggingface_hub`` resolves the file (honouring ``HF_ENDPOINT``, the token
from ``HF_TOKEN`` or ``hf auth login``, and its cache); the bytes are then
fetched by our resumable downloader (or copied from the HF cache when the file
is already there) and verified against the hub's LFS SHA-256, which the
resolve endpoint sends as ``X-Linked-Etag``.  The manifest records the commit
the revision resolved to.

Only ``huggingface_hub``'s public API that exists from the lowest version
declared in ``pyproject.toml`` (0.24) through 2.x is used: ``get_token``,
``hf_hub_url``, ``get_hf_file_metadata(url, token=...)``,
``try_to_load_from_cache`` and the error classes of ``huggingface_hub.utils``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import DownloadError, InvalidNameError, LlamarunError, ModelNotFoundError
from ..blobs import BlobInfo, ingest_stream, iter_file
from ..download import BlobRequest, download_blob
from ..names import derive_name, is_sha256_hex
from ..progress import PullProgress
from .base import FetchContext, PullPlan, pull_label

__all__ = ["HfSource", "parse_hf_source"]

logger = logging.getLogger(__name__)

_ID_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_DEFAULT_ENDPOINT = "https://huggingface.co"  # what huggingface_hub uses when HF_ENDPOINT is unset


def hf_endpoint() -> str:
    """The hub's base URL: ``HF_ENDPOINT`` or the public hub (as ``huggingface_hub`` itself decides)."""
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class HfSource:
    repo_id: str
    filename: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")

    def plan(self, ctx: FetchContext) -> PullPlan:
        import huggingface_hub as hh  # deferred: heavy

        endpoint = hf_endpoint()
        token = hh.get_token()
        meta = self._metadata(hh, endpoint, token)
        etag = (meta.etag or "").lower()
        sha256 = etag if is_sha256_hex(etag) else None
        if sha256 is None:
            logger.warning("%s has no LFS SHA-256 on the hub; its digest will be computed, not verified", self)
        commit = meta.commit_hash if meta.commit_hash and _COMMIT.fullmatch(meta.commit_hash) else None
        revision = commit or self.revision or "main"
        url = hh.hf_hub_url(self.repo_id, self.filename, revision=revision, endpoint=endpoint)
        cached = _cached_path(hh, self.repo_id, self.filename, commit)
        size = meta.size if isinstance(meta.size, int) and meta.size >= 0 else None

        def fetch(fctx: FetchContext, expected: str | None, key: str) -> BlobInfo:
            label = pull_label(expected, PurePosixPath(self.filename).name)
            if cached is not None:
                fctx.emit(PullProgress(f"{label} (from the Hugging Face cache)"))
                return ingest_stream(fctx.layout, iter_file(cached), expected_sha256=expected, expected_size=size,
                                     key=key, what=f"{self} (Hugging Face cache file {cached})")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            req = BlobRequest(url, key, sha256=expected, size=size, headers=headers, label=label)
            return download_blob(fctx.layout, req, fctx.policy, fctx.emit)

        stem = PurePosixPath(self.filename).name[: -len(".gguf")]
        return PullPlan(
            source=f"hf://{self.repo_id}/{self.filename}@{revision}", default_name=derive_name(stem),
            fetch=fetch, sha256=sha256, size=size, name_derived=True, verified_by="Hugging Face LFS sha256" if sha256 else "",
            extra={"huggingface": {"repo": self.repo_id, "file": self.filename, "revision": revision,
                                   "endpoint": endpoint}},
        )

    def _metadata(self, hh: Any, endpoint: str, token: str | None) -> Any:
        from huggingface_hub import utils as hf_utils  # the error classes' public home in 0.24 and 2.x

        url = hh.hf_hub_url(self.repo_id, self.filename, revision=self.revision, endpoint=endpoint)
        try:
            return hh.get_hf_file_metadata(url, token=token or False)
        except hf_utils.GatedRepoError:  # (a subclass of RepositoryNotFoundError: first)
            raise DownloadError(f"{self} is in a gated repository: accept its terms on the hub and set HF_TOKEN "
                                "or run `hf auth login`") from None
        except (hf_utils.RepositoryNotFoundError, hf_utils.RevisionNotFoundError,
                hf_utils.EntryNotFoundError) as exc:
            raise ModelNotFoundError(f"{self} was not found on {endpoint} ({type(exc).__name__}); check the "
                                     "repository, file and revision (and the token for private repos)") from None
        except hf_utils.OfflineModeIsEnabled:
            raise DownloadError(f"cannot resolve {self}: HF_HUB_OFFLINE is set, and the file is resolved on "
                                f"{endpoint}") from None
        except LlamarunError:
            raise
        except Exception as exc:  # noqa: BLE001 - translate the hub client's errors at our boundary
            raise DownloadError(f"could not resolve {self} on {endpoint}: {type(exc).__name__}: {exc}") from None


def _cached_path(hh: Any, repo_id: str, filename: str, commit: str | None) -> Path | None:
    """The file in the local Hugging Face cache at ``commit``, if it is there."""
    if commit is None:
        return None
    cache_dir = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None)
    try:
        found = hh.try_to_load_from_cache(repo_id, filename, revision=commit, cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - a broken cache only means we download
        return None
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def parse_hf_source(text: str) -> HfSource:
    """Validate ``hf://owner/repo/path/file.gguf[@revision]`` without touching the network."""
    if not isinstance(text, str) or not text.startswith("hf://") or len(text) > 1024 or "\x00" in text:
        raise InvalidNameError(f"invalid Hugging Face source {str(text)[:200]!r}")
    body, sep, revision = text.removeprefix("hf://").rpartition("@")
    if not sep:
        body, revision = revision, ""
    parts = body.split("/")
    bad = (
        len(parts) < 3
        or not all(_ID_PART.fullmatch(p) for p in parts[:2])
        or not all(_PATH_PART.fullmatch(p) and p not in (".", "..") for p in parts[2:])
        or not parts[-1].lower().endswith(".gguf")
        or (sep and (not _REVISION.fullmatch(revision) or ".." in revision))
    )
    if bad:
        raise InvalidNameError(
            f"invalid Hugging Face source {text[:200]!r}: expected hf://owner/repo/path/file.gguf[@revision]"
        )
    return HfSource(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision or None)
