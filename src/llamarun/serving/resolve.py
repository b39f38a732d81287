"""Model names -> files through the store, for every frontend's model manager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..runtime import ModelSource, modelfile_load_settings

__all__ = ["store_resolver"]


def store_resolver(store: Any) -> Callable[[str], ModelSource]:
    """Names -> the stored model's file, with its Modelfile's load settings (names only: never a
    path from a request)."""

    def resolve(name: str) -> ModelSource:
        stored = store.get(name)
        load = tuple(modelfile_load_settings(stored.defaults.parameters).items())
        return ModelSource(name=stored.name, path=stored.path, digest=stored.digest, load_settings=load)

    return resolve
