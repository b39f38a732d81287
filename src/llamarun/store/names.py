"""Validation of model names, tags and digests before they touch any path."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidNameError

__all__ = ["ModelRef", "derive_name", "is_sha256_hex", "normalize_digest", "parse_ref", "parse_sha256"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}(?:/[a-z0-9][a-z0-9._-]{0,63}){0,2}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(frozen=True)
class ModelRef:
    """A validated ``name[:tag]``; ``str()`` gives ``name:tag``."""

    name: str
    tag: str = "latest"

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_ref(text: str) -> ModelRef:
    """Parse and validate ``name[:tag]`` (lower-case name, ``latest`` by default)."""
    if not isinstance(text, str) or len(text) > 300 or "\x00" in text:
        raise InvalidNameError(f"invalid model name {text!r}")
    name, sep, tag = text.strip().partition(":")
    name = name.lower()
    tag = tag if sep else "latest"
    if not _NAME.fullmatch(name) or ".." in name or not _TAG.fullmatch(tag) or ".." in tag:
        raise InvalidNameError(
            f"invalid model name {text!r}: use letters, digits, '.', '_' and '-', "
            "optionally 'namespace/name', and ':tag'"
        )
    return ModelRef(name, tag)


def normalize_digest(digest: str) -> str:
    """``sha256:<hex>`` or ``sha256-<hex>`` -> ``<hex>``; anything else is refused."""
    if not isinstance(digest, str):
        raise InvalidNameError(f"invalid digest {digest!r}")
    match = _DIGEST.fullmatch(digest)
    if not match:
        raise InvalidNameError(f"invalid digest {digest[:80]!r}: expected sha256:<64 lower-case hex digits>")
    return match.group(1)


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def parse_sha256(text: str) -> str:
    """A user-given SHA-256 (``<hex>``, ``sha256:<hex>`` or ``sha256-<hex>``) -> ``<hex>``."""
    if not isinstance(text, str) or len(text) > 80:
        raise InvalidNameError(f"invalid SHA-256 {str(text)[:80]!r}")
    if _HEX64.fullmatch(text):
        return text
    return normalize_digest(text)


def is_sha256_hex(text: object) -> bool:
    return isinstance(text, str) and bool(_HEX64.fullmatch(text))


def derive_name(stem: str) -> str:
    """A valid model name made from a file or package name (``Foo-7B.Q4_K_M`` -> ``foo-7b.q4_k_m``)."""
    name = re.sub(r"\.{2,}", ".", _UNSAFE.sub("-", stem.lower())).strip("-._")[:64].strip("-._")
    if not name or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidNameError(f"cannot make a model name from {stem[:80]!r}: give one with --name")
    return name
