"""The verified, content-addressed model store.

``ModelStore`` is the one entry point: ``pull`` (catalog names, ``pip:``,
``https://``, ``hf://``, ``ollama://``, ``ollama-local:``), ``create`` (local
files), ``list``, ``show``, ``copy``, ``remove``, ``verify`` and ``gc``.
Progress arrives as :class:`PullProgress` events.
"""

from .catalog import CatalogEntry, load_catalog
from .layout import StoreLayout
from .maintenance import BlobCheck, GCReport, RemoveResult
from .modelfile import ModelDefaults, Modelfile, parse_modelfile
from .names import ModelRef, normalize_digest, parse_ref, parse_sha256
from .progress import ProgressFn, PullProgress
from .records import ModelDetails, StoredModel
from .sources import parse_source
from .store import ModelStore
from .transfer import TransferPolicy

__all__ = [
    "BlobCheck",
    "CatalogEntry",
    "GCReport",
    "ModelDefaults",
    "ModelDetails",
    "Modelfile",
    "ModelRef",
    "ModelStore",
    "ProgressFn",
    "PullProgress",
    "RemoveResult",
    "StoreLayout",
    "StoredModel",
    "TransferPolicy",
    "load_catalog",
    "normalize_digest",
    "parse_modelfile",
    "parse_ref",
    "parse_sha256",
    "parse_source",
]
