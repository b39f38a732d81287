"""Generation speed with 0 and 1 competing busy-loop processes, per OpenMP spin setting.

Each setting runs in its own worker process (SmolLM2 loaded once through ``llamarun.load``);
rounds interleave the settings and the contention levels, and the report gives medians and
the ratio of each setting's contended time to its own uncontended time, all from this run.

  new: llamarun's default (``GOMP_SPINCOUNT=1000``, set in engine/_lib.py)
  old: libgomp's default spin (``GOMP_SPINCOUNT=300000``, what llamarun ran with before)
  passive: ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once)

Usage: python benchmarks/bench_contention.py [--rounds 5] [--tokens 16] [--settings new,old]
Other work on the machine makes single numbers noisy: read the medians.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import env_threads, median

SETTINGS = {"new": {}, "old": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin3k": {"GOMP_SPINCOUNT": "3000"}, "spin10k": {"GOMP_SPINCOUNT": "10000"}, "spin30k": {"GOMP_SPINCOUNT": "30000"}}

WORKER = r"""
import sys, time, llamarun
with llamarun.load("smollm2", n_threads=int(sys.argv[1])) as m:  # the plan of a default load
    m.generate("Hello", max_tokens=4, ignore_eos=True)
    print("ready", flush=True)
    for line in sys.stdin:
        t = time.perf_counter()
        m.generate("The capital of France is", max_tokens=int(line), ignore_eos=True)  # default sampling, as a user gets
        print(time.perf_counter() - t, flush=True)
"""


def start_worker(extra: dict[str, str], threads: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(threads)], env={**env, **extra},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def timed(proc: subprocess.Popen[str], tokens: int) -> float:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{tokens}\n")
    proc.stdin.flush()
    return float(proc.stdout.readline())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--settings", default="new,old")
    args = ap.parse_args()
    names = args.settings.split(",")
    workers = {n: start_worker(SETTINGS[n], env_threads()) for n in names}
    times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in names for b in (0, 1)}
    try:
        for r in range(args.rounds):
            for busy in (0, 1) if r % 2 == 0 else (1, 0):
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
                time.sleep(0.3 if busy else 0)
                for n in names if r % 2 == 0 else names[::-1]:
                    times[(n, busy)].append(timed(workers[n], args.tokens))
                if hog is not None:
                    hog.kill()
                    hog.wait()
    finally:
        for proc in workers.values():
            proc.kill()
            proc.wait()
    print(f"{args.tokens} tokens, {env_threads()} threads, {args.rounds} interleaved rounds, medians:")
    print(f"{'setting':8} {'0 busy s':>9} {'tok/s':>7} {'1 busy s':>9} {'tok/s':>7} {'slowdown':>9} {'worst 1 busy':>13}")
    for n in names:
        t0, t1 = median(times[(n, 0)]), median(times[(n, 1)])
        print(f"{n:8} {t0:9.3f} {args.tokens / t0:7.1f} {t1:9.3f} {args.tokens / t1:7.1f} {t1 / t0:8.1f}x"
              f" {max(times[(n, 1)]):12.3f}s")
    if "new" in names and "old" in names:
        print(f"uncontended new/old tok/s: {median(times[('old', 0)]) / median(times[('new', 0)]):.2f}; "
              f"contended: {median(times[('old', 1)]) / median(times[('new', 1)]):.2f}")


if __name__ == "__main__":
    main()
