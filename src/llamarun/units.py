"""How llamarun shows sizes and durations to people: one convention everywhere.

Sizes use binary units (KiB, MiB, GiB: powers of 1024, as llama.cpp reports memory), durations
Go-style text as the settings accept them (``30s``, ``5m``, ``1h30m``). Both round-trip through
:func:`llamarun.config.parse_size` / :func:`llamarun.config.parse_duration`.
"""

from __future__ import annotations

import math

__all__ = ["format_bytes", "format_duration", "format_size_setting"]

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """``98362432`` -> ``'93.8 MiB'``; ``1536`` -> ``'1.5 KiB'``; ``512`` -> ``'512 B'``."""
    value = float(n)
    for unit in _BINARY:
        if abs(value) < 1024 or unit == _BINARY[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_size_setting(n: int) -> str:
    """A size as a user writes it in a setting: ``8589934592`` -> ``'8GiB'``; exact, else bytes."""
    for power in range(len(_BINARY) - 1, 0, -1):
        unit = 1024 ** power
        if n and n % unit == 0:
            return f"{n // unit}{_BINARY[power]}"
    return str(n)


def format_duration(seconds: float) -> str:
    """Seconds as a user writes a duration: ``300`` -> ``'5m'``, ``5400`` -> ``'1h30m'``, ``-1`` -> ``'-1'``.

    Negative (Ollama's "forever") stays a plain number; fractions use ``ms`` below a second, else ``1.5s``.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {seconds!r}")
    if seconds < 0:
        return f"{seconds:g}"
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    parts = []
    for unit, span in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= span:
            parts.append(f"{whole // span}{unit}")
            whole %= span
    return "".join(parts)
