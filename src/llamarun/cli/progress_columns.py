"""Rich progress columns that show bytes the way the rest of the CLI does (binary units)."""

from __future__ import annotations

from typing import Any

from rich.progress import ProgressColumn
from rich.text import Text

from ..units import format_bytes

__all__ = ["BytesColumn", "RateColumn"]


class BytesColumn(ProgressColumn):
    """``12.0 MiB/93.8 MiB`` (or just the bytes so far when the total is unknown)."""

    def render(self, task: Any) -> Text:
        done = format_bytes(int(task.completed))
        if task.total is None:
            return Text(done, style="progress.download")
        return Text(f"{done}/{format_bytes(int(task.total))}", style="progress.download")


class RateColumn(ProgressColumn):
    """``4.2 MiB/s``; ``?`` until rich has measured a speed."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{format_bytes(speed)}/s", style="progress.data.speed")
