"""``llamarun create NAME -f Modelfile``: read the file, check its template, store the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelfileError

__all__ = ["create_from_modelfile", "is_gguf"]


def is_gguf(path: Path) -> bool:
    """A file that starts with GGUF's magic (``create -f model.gguf`` means ``--from``)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def read_modelfile(path: Path) -> str:
    from ..store.modelfile import MAX_MODELFILE_CHARS

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODELFILE_CHARS * 4 + 1)
    except OSError as exc:
        raise ModelfileError(f"cannot read the Modelfile {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelfileError(f"the Modelfile {path} is not UTF-8 text (byte {exc.start})") from None


def create_from_modelfile(store: Any, name: str, path: Path, *, progress: Any = None) -> Any:
    """Parse ``path``, check its TEMPLATE in the sandbox, and create ``name`` (FROM relative to the file)."""
    from ..chat.override import check_modelfile_template
    from ..store.modelfile import parse_modelfile

    parsed = parse_modelfile(read_modelfile(path))
    if parsed.defaults.template:
        check_modelfile_template(parsed.defaults.template)
    return store.create_with_defaults(name, parsed.from_, parsed.defaults, base_dir=path.resolve().parent,
                                      progress=progress)
