"""Where replicas report their status and metrics for the ingress to read (one small Ray actor).

Ray Serve routes each call to one replica, so the ingress cannot ask them all;
instead each replica reports every ``REPORT_INTERVAL_S`` from a daemon thread,
and reports older than ``STALE_S`` (a replica that died) are left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BOARD_NAME", "REPORT_INTERVAL_S", "ReplicaBoard", "board_handle", "start_reporting"]

logger = logging.getLogger(__name__)

BOARD_NAME = "llamarun-replica-board"
REPORT_INTERVAL_S = 1.0
STALE_S = 5.0


class ReplicaBoard:
    """The latest report of every replica (a Ray actor: see :func:`board_handle`)."""

    def __init__(self) -> None:
        self._reports: dict[str, tuple[float, dict[str, Any], str]] = {}

    def report(self, replica: str, status: dict[str, Any], metrics: str) -> None:
        self._reports[replica] = (time.monotonic(), status, metrics)

    def reports(self) -> list[tuple[str, dict[str, Any], str]]:
        """Fresh reports as (replica, status, metrics text); stale ones are dropped."""
        now = time.monotonic()
        for key in [k for k, (t, _, _) in self._reports.items() if now - t > STALE_S]:
            del self._reports[key]
        return [(key, status, metrics) for key, (_, status, metrics) in sorted(self._reports.items())]


def board_handle(namespace: str = "llamarun") -> Any:
    """The board actor (created by the first caller; it lives as long as the Ray job)."""
    import ray

    actor = ray.remote(num_cpus=0)(ReplicaBoard)
    return actor.options(name=BOARD_NAME, namespace=namespace, get_if_exists=True).remote()


def start_reporting(replica: str, status: Callable[[], dict[str, Any]], metrics: Callable[[], str],
                    stop: threading.Event, namespace: str = "llamarun") -> threading.Thread:
    """Report ``status()`` and ``metrics()`` to the board until ``stop`` is set."""
    def run() -> None:
        board = None
        while not stop.wait(REPORT_INTERVAL_S):
            try:
                board = board or board_handle(namespace)
                board.report.remote(replica, status(), metrics())
            except Exception:  # noqa: BLE001 - a missed report only ages this replica's entry
                logger.debug("replica report failed", exc_info=True)

    thread = threading.Thread(target=run, name="llamarun-report", daemon=True)
    thread.start()
    return thread
