"""Models made from a Modelfile: a stored model (or a GGUF file) plus defaults, under a new name."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ..errors import ModelfileError, ModelNotFoundError
from .layout import StoreLayout
from .locks import key_lock
from .maintenance import release_previous
from .modelfile import ModelDefaults
from .names import normalize_digest, parse_ref
from .progress import ProgressFn, PullProgress, no_progress
from .pulling import create_model
from .records import StoredModel, get_model
from .transfer import TransferPolicy

__all__ = ["create_derived", "is_path_like"]


def is_path_like(text: str) -> bool:
    """A FROM value naming a file rather than a stored model."""
    return text.lower().endswith(".gguf") or text.startswith(("./", "../", "/", "~", ".\\"))


def _resolve_path(text: str, base_dir: Path | None) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise ModelfileError(f"FROM names the file {path}, which does not exist", field="from")
    return path


def create_derived(layout: StoreLayout, name: str, from_: str, defaults: ModelDefaults, *,
                   base_dir: str | os.PathLike[str] | None = None, policy: TransferPolicy | None = None,
                   emit: ProgressFn = no_progress) -> StoredModel:
    """Store ``name``: the model ``from_`` (a stored name, or a GGUF path relative to ``base_dir``) with
    ``defaults`` on top of the ones it already has (parameters merge; other given values replace)."""
    ref = parse_ref(name)
    if is_path_like(from_):
        path = _resolve_path(from_, Path(base_dir) if base_dir is not None else None)
        base = create_model(layout, str(ref), path, policy=policy, emit=emit)
        base_defaults = ModelDefaults()
    else:
        try:
            base = get_model(layout, parse_ref(from_))
        except ModelNotFoundError:
            raise ModelNotFoundError(f'FROM model "{from_}" is not in the store: pull it first '
                                     f"(llamarun pull {from_}) or give a GGUF path") from None
        base_defaults = base.defaults
    merged = defaults.over(base_defaults)
    previous = layout.read_manifest(ref)
    manifest = {**base.manifest, "name": str(ref), "modelfile": merged.to_manifest(),
                "added": dt.datetime.now(dt.timezone.utc).isoformat()}
    if base.ref != ref:
        manifest["copied_from"] = str(base.ref)
    emit(PullProgress("writing manifest"))
    if base.linked:
        layout.write_manifest(ref, manifest)
    else:
        hex_digest = normalize_digest(base.digest)
        with key_lock(layout, f"sha256-{hex_digest}"):
            if not base.path.is_file():
                raise ModelNotFoundError(f'the blob of "{base.ref}" disappeared while creating {ref}')
            layout.write_manifest(ref, manifest)
        if base.ref != ref:
            release_previous(layout, previous, hex_digest)
    emit(PullProgress("success"))
    return get_model(layout, ref)
