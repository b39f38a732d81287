"""Saved KV states of sequences no slot holds any more: a bounded RAM tier, then a bounded disk tier.

When the scheduler gives a slot to another request, the conversation cached there is saved
(llama.cpp's per-sequence state, see :meth:`~llamarun.engine.Context.seq_state_get`) into
:class:`KVTiers`, keyed by its tokens.  A later prompt that continues those tokens restores the
state into its slot instead of computing them again.  The RAM tier holds up to ``ram_limit``
bytes; the least recently used entries move to files in ``directory`` (up to ``disk_limit``
bytes), and past that they are dropped (``evicted``).  Pure Python bookkeeping and file I/O: no
llama.cpp call here.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SessionFileError
from .kvfile import read_state_file, write_state_file
from .metrics import RuntimeMetrics
from .slots import common_prefix

__all__ = ["KVTiers", "TierEntry"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class TierEntry:
    """One saved state: the tokens whose KV it holds, its size, and where it is (RAM or a file)."""

    id: int
    tokens: list[int]
    size: int
    data: bytes | None = None
    path: Path | None = None

    @property
    def tier(self) -> str:
        return "ram" if self.data is not None else "disk"


class KVTiers:
    """The RAM and disk tiers of one runtime (used on its engine thread only)."""

    def __init__(self, ram_limit: int, disk_limit: int, directory: Path | None, metrics: RuntimeMetrics) -> None:
        self.ram_limit = max(0, ram_limit)
        self.disk_limit = max(0, disk_limit) if directory is not None else 0
        self.directory = directory
        self.metrics = metrics
        self._entries: OrderedDict[int, TierEntry] = OrderedDict()  # least recently used first
        self._ids = itertools.count(1)
        self.ram_bytes = 0
        self.disk_bytes = 0

    @property
    def enabled(self) -> bool:
        return bool(self.ram_limit or self.disk_limit)

    def entries(self) -> list[TierEntry]:
        return list(self._entries.values())

    def best(self, prompt: Sequence[int]) -> tuple[TierEntry | None, int]:
        """The entry sharing the longest prefix with ``prompt`` and that length."""
        best, shared = None, 0
        for entry in self._entries.values():
            n = common_prefix(entry.tokens, prompt)
            if n > shared:
                best, shared = entry, n
        return best, shared

    def holding(self, tokens: Sequence[int]) -> TierEntry | None:
        """An entry whose tokens start with all of ``tokens`` (saving them again would add nothing)."""
        for entry in self._entries.values():
            if len(entry.tokens) >= len(tokens) and common_prefix(entry.tokens, tokens) == len(tokens):
                return entry
        return None

    def touch(self, entry: TierEntry) -> None:
        if entry.id in self._entries:
            self._entries.move_to_end(entry.id)

    def put(self, tokens: Sequence[int], state: bytes) -> TierEntry | None:
        """Keep ``state`` (the KV of ``tokens``); entries it extends are dropped.  None when it fits no tier."""
        for old in [e for e in self._entries.values() if common_prefix(e.tokens, tokens) == len(e.tokens)]:
            self._drop(old)  # superseded: the conversation went on
        entry = TierEntry(next(self._ids), list(tokens), len(state), data=state)
        self.metrics.session_saved += 1
        self.metrics.session_saved_bytes += len(state)
        if entry.size > self.ram_limit and not self._to_disk(entry):
            self._count_evicted()
            return None
        self._entries[entry.id] = entry
        if entry.data is not None:
            self.ram_bytes += entry.size
        self._enforce()
        self._gauges()
        return entry if entry.id in self._entries else None

    def read(self, entry: TierEntry) -> bytes | None:
        """The state bytes of ``entry`` (from RAM or its file); None (and the entry dropped) when
        its file is gone or corrupt."""
        self.touch(entry)
        if entry.data is not None:
            return entry.data
        try:
            _header, state = read_state_file(entry.path)  # type: ignore[arg-type]
        except SessionFileError as exc:
            logger.warning("dropping a saved KV state: %s", exc)
            self._drop(entry)
            return None
        return state

    def discard(self, entry: TierEntry) -> None:
        self._drop(entry)

    def close(self) -> None:
        """Forget every entry and remove the disk tier's directory."""
        self._entries.clear()
        self.ram_bytes = self.disk_bytes = 0
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self._gauges()

    # -- limits ------------------------------------------------------------------

    def _enforce(self) -> None:
        """Least recently used first: RAM entries beyond its limit go to disk, disk entries beyond its limit go."""
        for entry in list(self._entries.values()):
            if self.ram_bytes <= self.ram_limit:
                break
            if entry.data is not None:
                self.ram_bytes -= entry.size
                if not self._to_disk(entry):
                    del self._entries[entry.id]
                    self._count_evicted()
        for entry in list(self._entries.values()):
            if self.disk_bytes <= self.disk_limit:
                break
            if entry.data is None:
                self._drop(entry)
                self._count_evicted()

    def _to_disk(self, entry: TierEntry) -> bool:
        """Write ``entry`` to the disk tier (its RAM copy is let go); False when it cannot go there."""
        if self.directory is None or entry.size > self.disk_limit:
            return False
        path = self.directory / f"{entry.id}.kv"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_state_file(path, {"kind": "tier", "tokens": entry.tokens}, entry.data or b"")
        except OSError as exc:
            logger.warning("cannot write a KV state to %s: %s", path, exc)
            return False
        entry.data, entry.path = None, path
        self.disk_bytes += entry.size
        return True

    def _drop(self, entry: TierEntry) -> None:
        if self._entries.pop(entry.id, None) is None:
            return
        if entry.data is not None:
            self.ram_bytes -= entry.size
        elif entry.path is not None:
            self.disk_bytes -= entry.size
            try:
                os.unlink(entry.path)
            except OSError:
                pass
        self._gauges()

    def _count_evicted(self) -> None:
        self.metrics.session_evicted += 1

    def _gauges(self) -> None:
        self.metrics.session_ram_bytes = self.ram_bytes
        self.metrics.session_disk_bytes = self.disk_bytes
