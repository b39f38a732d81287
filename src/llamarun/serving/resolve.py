"""Model names -> files through the store, for every frontend's model manager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..runtime import ModelSource, modelfile_load_settings

__all__ = ["KnownModels", "store_resolver"]

_MOST_REMEMBERED = 1024  # names whose answer is kept (only names the store has are kept)


class KnownModels:
    """The store's answer for a name (the stored model and its Modelfile defaults), kept while the
    store's :meth:`~llamarun.store.ModelStore.fingerprint` of it (its manifest's and its file's
    stat) stays the same: a stat or two instead of reading and checking the manifest (with the
    catalog's defaults, a third of the server's CPU when 200 clients arrive at once). The
    manifest's stat is taken before it is read, so one rewritten meanwhile is read again next
    time. A store without ``fingerprint`` is asked every time."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._known: dict[str, tuple[tuple[int, ...], Any, Any]] = {}

    def lookup(self, name: str) -> tuple[Any, Any]:
        """``store.get(name)`` (its errors included) and its ``defaults``, from one check."""
        _, stored, defaults = self._entry(name)
        return stored, defaults

    def defaults(self, name: str) -> Any:
        """``store.get(name).defaults``."""
        return self._entry(name)[2]

    def _entry(self, name: str) -> tuple[tuple[int, ...], Any, Any]:
        fingerprint = getattr(self.store, "fingerprint", None)
        hit = self._known.get(name)
        if hit is not None and fingerprint(name, hit[1].path) == hit[0]:  # type: ignore[misc]
            return hit
        before = fingerprint(name) if fingerprint is not None else None
        stored = self.store.get(name)
        after = fingerprint(name, stored.path) if fingerprint is not None else None
        entry = (after or (), stored, stored.defaults)
        if before is not None and after is not None and after[:len(before)] == before:
            if len(self._known) >= _MOST_REMEMBERED:
                self._known.clear()
            self._known[name] = entry
        return entry


def store_resolver(store: Any) -> Callable[[str], ModelSource]:
    """Names -> the stored model's file, with its Modelfile's load settings (names only: never a
    path from a request); each name's answer kept while it stays the same (:class:`KnownModels`)."""
    known = KnownModels(store)

    def resolve(name: str) -> ModelSource:
        stored, defaults = known.lookup(name)
        load = tuple(modelfile_load_settings(defaults.parameters).items())
        return ModelSource(name=stored.name, path=stored.path, digest=stored.digest, load_settings=load)

    return resolve
