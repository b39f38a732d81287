"""Ownership of one native handle: freed exactly once, by close() or a finalizer."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..errors import ClosedHandleError

__all__ = ["NativeHandle"]


class _Owner:
    """Holds one pointer and frees it when the last claim on it goes away.

    ``keep`` holds the owners this one depends on (a context's model), so a
    model is freed only after every context made from it, whatever order the
    callers close them in.
    """

    __slots__ = ("__weakref__", "keep", "ptr")

    def __init__(self, ptr: Any, free: Callable[[Any], None], keep: tuple["_Owner", ...]) -> None:
        self.ptr = ptr
        self.keep = keep
        finalizer = weakref.finalize(self, free, ptr)
        finalizer.atexit = False  # at exit the OS reclaims; order would be arbitrary


class NativeHandle:
    """Base for engine objects that own one llama.cpp pointer.

    ``close()`` is idempotent and gives up this object's claim at once (the
    pointer is freed as soon as nothing that depends on it is left); the object
    is a context manager; a finalizer frees the pointer if the caller forgot;
    ``ptr`` raises :class:`ClosedHandleError` after close instead of handing
    out a dangling pointer.
    """

    _kind = "handle"

    def __init__(self, ptr: Any, free: Callable[[Any], None], *, keep: tuple["NativeHandle", ...] = ()) -> None:
        self._owner: _Owner | None = _Owner(ptr, free, tuple(h._live_owner() for h in keep))

    def _live_owner(self) -> _Owner:
        if self._owner is None:
            raise ClosedHandleError(f"this {self._kind} is closed; create a new one")
        return self._owner

    @property
    def ptr(self) -> Any:
        owner = self._owner
        if owner is None:
            raise ClosedHandleError(f"this {self._kind} is closed; create a new one")
        return owner.ptr

    @property
    def closed(self) -> bool:
        return self._owner is None

    def close(self) -> None:
        """Release the native memory. Safe to call more than once."""
        self._owner = None

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
