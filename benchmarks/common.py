"""Helpers shared by the benchmarks: model path, llama.cpp tool binaries, statistics."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def model_path(name: str) -> Path:
    from llamarun.api import resolve_model_path

    return resolve_model_path(name)


def llama_tools() -> Path | None:
    """Directory of llama.cpp's own tools built from the pinned sdist (None if the build fails)."""
    script = ROOT / "benchmarks" / "build_llama_tools.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"(could not build llama.cpp tools: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    return Path(proc.stdout.strip().splitlines()[-1])


def random_tokens(n: int, n_vocab: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(100, n_vocab - 100) for _ in range(n)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def env_threads(default: int = 2) -> int:
    return int(os.environ.get("LLAMARUN_BENCH_THREADS", default))


def dump(path: str | None, data: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2))
