"""What other threads hand the engine thread through a runtime's inbox.

Each message is a small frozen dataclass; the engine thread matches on its type.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..engine import Model
from .sequence import ActiveRequest

if TYPE_CHECKING:
    from .loop import EngineLoop

__all__ = ["CallEngine", "CallModel", "InboxMessage", "Stop", "Submit"]


@dataclass(frozen=True, slots=True)
class Submit:
    """A new request to schedule."""

    request: ActiveRequest


@dataclass(frozen=True, slots=True)
class CallModel:
    """Run ``fn(model)`` on the engine thread; its result or exception goes to ``future``."""

    fn: Callable[[Model], Any]
    future: Future[Any]


@dataclass(frozen=True, slots=True)
class CallEngine:
    """Run ``fn(loop)`` on the engine thread between steps; its result or exception goes to ``future``."""

    fn: Callable[[EngineLoop], Any]
    future: Future[Any]


@dataclass(frozen=True, slots=True)
class Stop:
    """Cancel what is left and end the engine thread."""


InboxMessage = Union[Submit, CallModel, CallEngine, Stop]
