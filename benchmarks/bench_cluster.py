"""One `llamarun serve` against a 2-replica `llamarun cluster serve` on this machine (Ray Serve).

Same model, the same number of slots in all (serve: --parallel 8 with 2 threads; the cluster:
2 replicas x 4 slots x 1 thread), the same clients, the contenders kept up side by side and
interleaved level by level. Reported per level (16 and 32 clients, each streaming one OpenAI chat
completion of 128 tokens, end-of-generation ignored): aggregate tokens/s and TTFT p95, and the
cluster's ratio to serve (its ingress overhead: on one 2-core machine the cluster cannot be faster).
Then a shared-prefix chat workload (8 conversations x 3 turns behind one long system prompt), with
prefix routing on and off (two clusters): the follow-up turns' cached-token rate and TTFT.

    python benchmarks/bench_cluster.py [--levels 16,32] [--rounds 2] [--json out.json]
    python benchmarks/bench_cluster.py --overhead [--threads 1]   # serve vs a one-replica cluster

Ray Serve's proxy binds the port it is given: free ports are found first (a small race, no more).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from bench_http import Target, free_port, run_level, start_llamarun, stop
from common import ROOT, dump, median, percentile

SYSTEM = "You are the captain of a research ship in the southern ocean. " * 12


def start_cluster(*extra: str, replicas: int = 2, slots: int = 4, threads: int = 1) -> Target:
    port = free_port()
    cmd = [sys.executable, "-m", "llamarun", "cluster", "serve", "smollm2", "--replicas", str(replicas),
           "--slots", str(slots), "--threads", str(threads), "--ctx", "1024", "--max-queued", "64",
           "--port", str(port), *extra]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return Target(" ".join([f"cluster x{replicas}", *extra]), proc, url, {"ignore_eos": True})
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("the cluster did not come up")


def stop_cluster(target: Target) -> None:
    stop(target)
    try:
        os.killpg(target.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def conversation(client: httpx.AsyncClient, i: int) -> list[dict[str, float]]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Day {i}: where are we?"}]
    turns = []
    for turn in range(3):
        start = time.perf_counter()
        r = await client.post("/v1/chat/completions", json={"model": "smollm2", "messages": messages,
                                                           "max_tokens": 24, "temperature": 0})
        body = r.json()
        usage = body["usage"]
        turns.append({"ttft": time.perf_counter() - start, "prompt": usage["prompt_tokens"],
                      "cached": usage["prompt_tokens_details"]["cached_tokens"]})
        messages += [body["choices"][0]["message"], {"role": "user", "content": f"And on day {i + turn + 1}?"}]
    return turns


async def shared_prefix(target: Target) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=target.url, timeout=600) as client:
        runs = await asyncio.gather(*(conversation(client, i) for i in range(8)))
    follow = [t for run in runs for t in run[1:]]
    return {"cached_rate": sum(t["cached"] for t in follow) / max(1, sum(t["prompt"] for t in follow)),
            "ttft_p50": median([t["ttft"] for t in follow]), "ttft_p95": percentile([t["ttft"] for t in follow], 0.95)}


def overhead(levels: list[int], rounds: int, threads: int) -> dict[int, list[float]]:
    """The ingress's own cost: serve against a cluster of ONE replica shaped as serve is (8 slots,
    ``threads`` decode threads), so the only difference is Ray Serve's proxy, the ingress and the
    replica handle. With 1 thread on a 2-core machine, Ray's processes have a core of their own
    (as on a machine with cores to spare); with 2 they take CPU from decoding."""
    serve = start_llamarun("smollm2", threads, 1024, 8)
    cluster = start_cluster(replicas=1, slots=8, threads=threads)
    ratios: dict[int, list[float]] = {}
    try:
        for target in (serve, cluster):  # warm-up: the first requests after a start run slower
            asyncio.run(run_level(target, "smollm2", 2))
        for level in levels:
            for rnd in range(rounds):
                order = (serve, cluster) if rnd % 2 == 0 else (cluster, serve)
                got = {t.name: asyncio.run(run_level(t, "smollm2", level)) for t in order}
                ratios.setdefault(level, []).append(got[cluster.name]["tok_s"] / got[serve.name]["tok_s"])
            print(f"{level:>3} clients: one-replica cluster / serve tok/s per round "
                  f"{', '.join(f'{r:.2f}' for r in ratios[level])}, median {median(ratios[level]):.2f}")
    finally:
        stop_cluster(cluster)
        stop(serve)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="16,32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--overhead", action="store_true", help="only serve vs a one-replica cluster of its shape")
    parser.add_argument("--threads", type=int, default=2, help="decode threads on each side (--overhead)")
    parser.add_argument("--json")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.overhead:
        dump(args.json, {"overhead": overhead(levels, args.rounds, args.threads), "threads": args.threads})
        return
    serve = start_llamarun("smollm2", 2, 1024, 8)
    cluster = start_cluster()
    results: dict[str, Any] = {"throughput": {}, "prefix": {}}
    try:
        for level in levels:
            rows: dict[str, list[dict]] = {serve.name: [], cluster.name: []}
            for _ in range(args.rounds):
                for target in (serve, cluster):
                    rows[target.name].append(asyncio.run(run_level(target, "smollm2", level)))
            results["throughput"][level] = rows
            best = {name: max(r["tok_s"] for r in runs) for name, runs in rows.items()}
            ratios = [c["tok_s"] / s["tok_s"] for s, c in zip(rows[serve.name], rows[cluster.name])]
            print(f"{level:>3} clients: serve {best[serve.name]:6.1f} tok/s, cluster {best[cluster.name]:6.1f} tok/s, "
                  f"median ratio {median(ratios):.2f}; TTFT p95 serve "
                  f"{median([r['ttft_p95'] for r in rows[serve.name]]):.2f} s, cluster "
                  f"{median([r['ttft_p95'] for r in rows[cluster.name]]):.2f} s; errors "
                  f"{sum(len(r['errors']) for rs in rows.values() for r in rs)}")
        results["prefix"]["on"] = asyncio.run(shared_prefix(cluster))
    finally:
        stop_cluster(cluster)
    off = start_cluster("--no-prefix-routing")
    try:
        results["prefix"]["off"] = asyncio.run(shared_prefix(off))
        results["prefix"]["serve"] = asyncio.run(shared_prefix(serve))
    finally:
        stop_cluster(off)
        stop(serve)
    for name, row in results["prefix"].items():
        print(f"shared prefix, {name:>5}: follow-up turns cached {row['cached_rate']:.0%} of prompt tokens, "
              f"TTFT p50 {row['ttft_p50']:.2f} s, p95 {row['ttft_p95']:.2f} s")
    dump(args.json, results)


if __name__ == "__main__":
    main()
