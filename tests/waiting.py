"""One way for tests to wait for a state: poll it, never sleep a fixed time and hope."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Call ``condition`` every ``interval`` seconds until it is true or ``timeout`` seconds pass.

    Returns whether it became true; the caller asserts the state itself, so a failure
    shows the values, not "timed out".
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
