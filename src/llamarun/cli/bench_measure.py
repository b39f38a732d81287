"""What ``llamarun bench`` measures, through the runtime (as benchmarks/bench_engine.py and
benchmarks/bench_runtime.py do):

- ``pp<N>``: prompt processing of N random tokens (tokens/s of the prefill; one answer token);
- ``tg<N>``: generation of N tokens after a one-token prompt, greedy, end-of-text ignored
  (tokens after the first / the time after the first: the decode speed, as llama-bench's tg);
- concurrency: B streams at once (short random prompts, N new tokens each): the aggregate
  generation tokens/s while all B decode together (as llama-batched-bench's S_TG) and the
  time to first token p50/p95.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BenchResult", "BenchSettings", "LevelResult", "Rate", "context_size", "percentile", "run_bench"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchSettings:
    prompt_tokens: int = 512
    gen_tokens: int = 128
    reps: int = 3
    levels: tuple[int, ...] = (1, 4, 8)
    level_prompt_tokens: int = 64
    seed: int = 0


@dataclass(frozen=True)
class Rate:
    """A speed measured ``reps`` times: the median, its spread and every sample (tokens/s)."""

    test: str
    tokens_per_s: float
    stdev: float
    samples: tuple[float, ...]


@dataclass(frozen=True)
class LevelResult:
    streams: int
    tokens_per_s: float  # aggregate while every stream decodes
    per_stream_tokens_per_s: float
    overall_tokens_per_s: float  # every generated token / wall time from submission
    ttft_p50_s: float
    ttft_p95_s: float
    generated_tokens: int
    wall_s: float


@dataclass(frozen=True)
class BenchResult:
    model: str
    path: str
    architecture: str
    parameters: int
    quantization: str
    threads: int | None
    n_ctx: int
    settings: BenchSettings
    pp: Rate
    tg: Rate
    concurrency: tuple[LevelResult, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def context_size(s: BenchSettings) -> int:
    """Per-request context that holds every test, rounded up to 256."""
    need = max(s.prompt_tokens + 8, s.level_prompt_tokens + s.gen_tokens + 8, s.gen_tokens + 16)
    return -(-need // 256) * 256


def _random_tokens(n: int, n_vocab: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    margin = min(100, n_vocab // 4)  # keep clear of special tokens at either end
    return [rng.randrange(margin, n_vocab - margin) for _ in range(n)]


def _rate(test: str, samples: list[float]) -> Rate:
    spread = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return Rate(test, statistics.median(samples), spread, tuple(samples))


def measure_pp(model: Any, s: BenchSettings, progress: Progress) -> Rate:
    n_vocab = model.info.n_vocab
    samples = []
    for rep in range(s.reps):
        progress(f"pp{s.prompt_tokens} {rep + 1}/{s.reps}")
        r = model.generate(_random_tokens(s.prompt_tokens, n_vocab, s.seed + 100 + rep), max_tokens=1,
                           temperature=0)
        samples.append(r.timings.prompt_tokens_per_s)
    return _rate(f"pp{s.prompt_tokens}", samples)


def measure_tg(model: Any, s: BenchSettings, progress: Progress) -> Rate:
    start = model.tokenize("", add_special=True) or [0]
    samples = []
    for rep in range(s.reps):
        progress(f"tg{s.gen_tokens} {rep + 1}/{s.reps}")
        r = model.generate(start, max_tokens=s.gen_tokens, temperature=0, ignore_eos=True)
        t = r.timings
        samples.append((t.generated_tokens - 1) / t.generate_s if t.generate_s > 0 else 0.0)
    return _rate(f"tg{s.gen_tokens}", samples)


def measure_level(model: Any, s: BenchSettings, streams: int, seed: int) -> LevelResult:
    """``streams`` requests at once; timestamps of every token of every stream."""
    n_vocab = model.info.n_vocab
    stamps: list[list[float]] = [[] for _ in range(streams)]
    errors: list[BaseException] = []
    begin = time.perf_counter()

    def one(i: int) -> None:
        try:
            prompt = _random_tokens(s.level_prompt_tokens, n_vocab, seed * 1000 + i)
            for chunk in model.generate(prompt, max_tokens=s.gen_tokens, temperature=0, ignore_eos=True,
                                        stream=True):
                if chunk.token_ids:
                    stamps[i].extend([time.perf_counter()] * len(chunk.token_ids))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    workers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(streams)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return _level_result(streams, stamps, begin)


def _level_result(streams: int, stamps: list[list[float]], begin: float) -> LevelResult:
    end = max(st[-1] for st in stamps)
    all_first = max(st[0] for st in stamps)  # from here every stream is decoding
    after = sum(1 for st in stamps for t in st if t > all_first)
    rate = after / (end - all_first) if end > all_first else 0.0
    ttfts = [st[0] - begin for st in stamps]
    total = sum(len(st) for st in stamps)
    return LevelResult(streams, rate, rate / streams, total / (end - begin), statistics.median(ttfts),
                       percentile(ttfts, 0.95), total, end - begin)


def run_bench(model: Any, s: BenchSettings, progress: Progress) -> tuple[Rate, Rate, tuple[LevelResult, ...]]:
    """Warm up, then pp, tg and each concurrency level."""
    progress("warm-up")
    model.generate(_random_tokens(32, model.info.n_vocab, s.seed), max_tokens=4, temperature=0)
    pp = measure_pp(model, s, progress)
    tg = measure_tg(model, s, progress)
    levels = []
    for streams in s.levels:
        progress(f"{streams} concurrent stream{'s' if streams != 1 else ''}")
        levels.append(measure_level(model, s, streams, s.seed + streams))
    return pp, tg, tuple(levels)
