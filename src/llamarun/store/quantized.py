"""Models made by quantizing a stored model: a new blob with its own digest, and its provenance.

The store does not quantize (that is llama.cpp's work, :mod:`llamarun.engine.quantize`): the
caller passes ``write``, which writes the quantized GGUF to the temporary path it is given.
The result is hashed, checked and renamed into ``blobs/`` like a download; the manifest records
where it came from (``quantized_from``: the source's name, digest and quantization, and the
type it was quantized to) and keeps the source's Modelfile defaults.  If ``write`` fails,
nothing is left in the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..gguf import GGUFInfo
from .blobs import commit_blob, ensure_free_space, hash_file
from .layout import StoreLayout
from .locks import key_lock
from .maintenance import release_previous
from .names import ModelRef, normalize_digest, parse_ref
from .progress import ProgressFn, PullProgress, no_progress
from .records import MANIFEST_SCHEMA, StoredModel, get_model

__all__ = ["QuantizeWriter", "quantized_name", "store_quantized"]

QuantizeWriter = Callable[[Path], GGUFInfo]
"""Writes the quantized GGUF to the path it is given and returns its facts (raises on failure)."""


def quantized_name(source: ModelRef, type_name: str) -> ModelRef:
    """The default name of ``source`` quantized to ``type_name``: ``smollm2:q4_0``, ``qwen:7b-q4_0``."""
    suffix = type_name.lower()
    return parse_ref(f"{source.name}:{suffix if source.tag == 'latest' else f'{source.tag}-{suffix}'}")


def _work_key(source: StoredModel, type_name: str) -> str:
    seed = f"{source.digest}:{type_name}".encode()
    return "url-" + hashlib.sha256(seed).hexdigest()[:32]


def _manifest(ref: ModelRef, source: StoredModel, type_name: str, hex_digest: str, size: int,
              info: GGUFInfo, extra: Mapping[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA, "name": str(ref), "source": f"quantize:{source.name}",
        "digest": f"sha256:{hex_digest}", "size": size, "format": "gguf",
        "added": dt.datetime.now(dt.timezone.utc).isoformat(), "verified": True, "verified_by": "llamarun quantize",
        "gguf": info.summary(),
        "quantized_from": {"name": source.name, "digest": source.digest,
                           "quantization": str(source.facts.get("quantization", "")), "type": type_name, **extra},
    }
    if "modelfile" in source.manifest:
        manifest["modelfile"] = source.manifest["modelfile"]
    return manifest


def store_quantized(layout: StoreLayout, ref: ModelRef, source: StoredModel, type_name: str,
                    write: QuantizeWriter, *, extra: Mapping[str, Any] | None = None,
                    emit: ProgressFn = no_progress) -> StoredModel:
    """Store as ``ref`` what ``write`` makes of ``source`` (quantized to ``type_name``).

    ``extra`` goes into the manifest's ``quantized_from`` (e.g. the options used).  The work file
    lives in ``partial/`` under a lock (``gc`` leaves it alone) and is removed on any failure.
    """
    ensure_free_space(layout, source.size, f"{source.name} quantized to {type_name}")
    key = _work_key(source, type_name)
    with key_lock(layout, key):
        work = layout.temp_file(key)
        try:
            info = write(work)
            emit(PullProgress("verifying sha256 digest"))
            hex_digest, size = hash_file(work)
            with key_lock(layout, f"sha256-{hex_digest}"):
                commit_blob(layout, work, hex_digest, None, what=f"{source.name} quantized to {type_name}")
                previous = layout.read_manifest(ref)
                emit(PullProgress("writing manifest"))
                layout.write_manifest(ref, _manifest(ref, source, type_name, hex_digest, size, info, extra or {}))
        finally:
            work.unlink(missing_ok=True)
    release_previous(layout, previous, normalize_digest(f"sha256:{hex_digest}"))
    emit(PullProgress("success"))
    return get_model(layout, ref)
