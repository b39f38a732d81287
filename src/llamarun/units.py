"""How llamarun reads and shows sizes and durations: one convention everywhere.

Sizes use binary units (KiB, MiB, GiB: powers of 1024, as llama.cpp reports memory), durations
Go-style text as the settings accept them (``30s``, ``5m``, ``1h30m``). Both round-trip through
:func:`parse_size` / :func:`parse_duration` here (the settings, the CLI and the HTTP layer parse with them).
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_KEEP_ALIVE", "format_bytes", "format_duration", "format_size_setting", "parse_duration",
           "parse_keep_alive", "parse_size"]

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


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration (``"5m"``, ``"1h30m"``, ``"-1"``).

    Negative means "forever" (Ollama's keep_alive convention). Raises ValueError.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip())
    else:
        raise ValueError(f"expected a duration such as '5m' or a number of seconds, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {value!r}")
    return seconds


MAX_KEEP_ALIVE = 1e9  # seconds (about 31 years): the longest positive keep_alive accepted


def parse_keep_alive(value: object) -> float:
    """keep_alive in seconds: 0 unloads at once, any negative value keeps the model loaded
    forever (returned as -1.0), and a positive value above :data:`MAX_KEEP_ALIVE` is refused
    (ValueError; use a negative value for "forever") so that no timer overflows."""
    seconds = parse_duration(value)
    if seconds < 0:
        return -1.0
    if seconds > MAX_KEEP_ALIVE:
        raise ValueError(f"keep_alive must be at most {MAX_KEEP_ALIVE:.0e} seconds (about 31 years), "
                         f"got {value!r}; use a negative value to keep the model loaded forever")
    return seconds


def _parse_duration_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"expected a duration such as '30s', '5m', '1h30m' or seconds, got {text!r}")
    return sign * sum(float(n) * _DURATION_UNIT[u] for n, u in parts)


_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(i?)b?", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from an integer or a size such as ``"8GiB"``, ``"512MB"``, ``"1.5G"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and math.isfinite(value):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number, prefix, binary = match.groups()
        base = 1024 if binary or not prefix else 1000
        size = int(float(number) * base ** " kmgt".index(prefix.lower() or " "))
    else:
        raise ValueError(f"expected a size such as '8GiB', '512MB' or bytes, got {value!r}")
    if size < 0:
        raise ValueError(f"size must not be negative, got {value!r}")
    return size
