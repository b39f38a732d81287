"""Progress events of store operations (the HTTP server forwards them for ``/api/pull``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ProgressFn", "PullProgress", "no_progress"]


@dataclass(frozen=True)
class PullProgress:
    """One step of a pull, shaped like Ollama's ``/api/pull`` stream.

    ``status`` is a short text ("pulling manifest", "pulling <digest prefix>",
    "verifying sha256 digest", "writing manifest", "success", ...);
    ``digest``, ``total`` and ``completed`` are set while bytes move
    (``total`` is 0 when the size is not known yet).
    """

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as Ollama sends it: zero/empty fields left out."""
        event: dict[str, Any] = {"status": self.status}
        if self.digest:
            event["digest"] = self.digest
        if self.total:
            event["total"] = self.total
        if self.completed:
            event["completed"] = self.completed
        return event


ProgressFn = Callable[[PullProgress], None]


def no_progress(event: PullProgress) -> None:
    """The default progress callback: ignores events."""
