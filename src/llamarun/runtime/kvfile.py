"""One file format for saved KV states: the disk tier's entries and saved sessions.

``MAGIC`` (8 bytes), the header's length (8 bytes, little endian), the header (JSON: what the
state is, its tokens, the state's length and SHA-256), then the state bytes as llama.cpp's
``llama_state_seq_get_data`` wrote them.  Reading checks every length and the checksum, so a
truncated or corrupt file is a :class:`~llamarun.errors.SessionFileError`, never a wrong KV.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from ..errors import SessionFileError

__all__ = ["FORMAT_VERSION", "MAGIC", "read_state_file", "write_state_file"]

MAGIC = b"LLRKV\x00\x01\x00"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<Q")
_MAX_HEADER = 256 << 20  # token lists and messages; far beyond any real header


def write_state_file(path: Path, header: dict[str, Any], state: bytes) -> int:
    """Write ``header`` and ``state`` to ``path`` atomically (a temporary file, then a rename); returns bytes written."""
    meta = {**header, "format": FORMAT_VERSION, "state_bytes": len(state),
            "state_sha256": hashlib.sha256(state).hexdigest()}
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(MAGIC + _LENGTH.pack(len(encoded)))
            out.write(encoded)
            out.write(state)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return len(MAGIC) + _LENGTH.size + len(encoded) + len(state)


def read_state_file(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header and state bytes of a file :func:`write_state_file` wrote; SessionFileError otherwise."""
    name = str(path)
    try:
        with open(path, "rb") as src:
            head = src.read(len(MAGIC) + _LENGTH.size)
            if len(head) < len(MAGIC) + _LENGTH.size or head[:len(MAGIC)] != MAGIC:
                raise SessionFileError(f"{name} is not a llamarun session file (or it is truncated)", path=name)
            (length,) = _LENGTH.unpack(head[len(MAGIC):])
            if length > _MAX_HEADER:
                raise SessionFileError(f"{name} is corrupt: its header claims {length} bytes", path=name)
            encoded = src.read(length)
            if len(encoded) < length:
                raise SessionFileError(f"{name} is truncated (in its header)", path=name)
            header = _decode(encoded, name)
            state = src.read(int(header["state_bytes"]) + 1)
    except OSError as exc:
        raise SessionFileError(f"cannot read {name}: {exc.strerror or exc}", path=name) from None
    expected = int(header["state_bytes"])
    if len(state) != expected:
        what = "truncated" if len(state) < expected else "corrupt: it has bytes past its KV state"
        raise SessionFileError(f"{name} is {what} ({len(state)} of {expected} state bytes)", path=name)
    if hashlib.sha256(state).hexdigest() != header.get("state_sha256"):
        raise SessionFileError(f"{name} is corrupt: its KV state fails its checksum", path=name)
    return header, state


def _decode(encoded: bytes, name: str) -> dict[str, Any]:
    try:
        header = json.loads(encoded)
    except (UnicodeDecodeError, ValueError):
        raise SessionFileError(f"{name} is corrupt: its header is not JSON", path=name) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION or not isinstance(
            header.get("state_bytes"), int) or header["state_bytes"] < 0 or not isinstance(header.get("tokens"), list):
        raise SessionFileError(f"{name} is corrupt or from another llamarun version (format "
                               f"{header.get('format') if isinstance(header, dict) else '?'})", path=name)
    return header
