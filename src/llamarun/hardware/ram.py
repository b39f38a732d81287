"""System memory: total and available RAM, and a container's memory limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemoryInfo", "detect_memory", "parse_meminfo"]

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number


@dataclass(frozen=True)
class MemoryInfo:
    """RAM in bytes. ``usable`` is what a new model may take without swapping."""

    total: int
    available: int
    swap_total: int
    cgroup_limit: int | None = None  # a container's memory limit, None when unlimited
    cgroup_usage: int | None = None

    @property
    def usable(self) -> int:
        if self.cgroup_limit is None:
            return self.available
        return max(0, min(self.available, self.cgroup_limit - (self.cgroup_usage or 0)))

    @property
    def headroom(self) -> int:
        """Memory left free for the OS and other programs: a tenth of usable, at most 1 GiB."""
        return min(1 << 30, self.usable // 10)

    @property
    def budget(self) -> int:
        """What a new model may use by default: usable minus the headroom."""
        return self.usable - self.headroom


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes by field name (``MemTotal``, ``MemAvailable``, ...)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    return values


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path for a v1 controller ("" for v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path or "/"
    return "/"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_memory() -> tuple[int | None, int | None]:
    """(limit, usage) of this process's memory cgroup, v2 then v1; limit None if unlimited."""
    root = Path("/sys/fs/cgroup")
    candidates = [
        (root / _own_cgroup("").lstrip("/"), "memory.max", "memory.current"),
        (root / "memory" / _own_cgroup("memory").lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes"),
        (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
    ]
    for directory, limit_name, usage_name in candidates:
        if (directory / limit_name).exists():
            limit = _read_int(directory / limit_name)  # "max" (v2 unlimited) reads as None
            if limit is not None and limit >= _UNLIMITED:
                limit = None
            return limit, _read_int(directory / usage_name)
    return None, None


def detect_memory() -> MemoryInfo:
    """RAM from psutil (``/proc/meminfo`` on Linux) plus any cgroup limit."""
    import psutil  # deferred

    vm = psutil.virtual_memory()
    limit, usage = _cgroup_memory()
    return MemoryInfo(
        total=int(vm.total),
        available=int(vm.available),
        swap_total=int(psutil.swap_memory().total),
        cgroup_limit=limit,
        cgroup_usage=usage if limit is not None else None,
    )
