"""Time per streamed token, paired: `llamarun serve` vs llama.cpp's llama-server, request by request.

Aggregate tokens/s (bench_http.py) mixes time to first token with the time per token and swings
by several percent between rounds on a shared VM, so a 1% change hides in it.  Here both servers
stay up, and for each of ``--pairs`` pairs each server streams ``--clients`` concurrent OpenAI
chat completions (128 tokens, end-of-generation ignored), in alternating order.  Per request: the
median gap between streamed tokens; per pair: the ratio of the two servers' medians.  The report
gives the median gap of each server and the median of the per-pair ratios, for the gap and for
the whole request.

    python benchmarks/bench_itl.py [--model smollm2] [--threads 2] [--clients 1] [--pairs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx
from bench_http import TOPICS, Target, chat_body, llama_tools, model_path, start_llama_server, start_llamarun, stop
from common import median


async def one_request(client: httpx.AsyncClient, target: Target, model: str, seed: int) -> dict[str, float]:
    body = chat_body(target, model, f"Write a long story about {TOPICS[seed % len(TOPICS)]} ({seed}).", seed)
    start = time.perf_counter()
    times: list[float] = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    times.append(time.perf_counter())
    if len(times) < 2:
        raise RuntimeError(f"{target.name}: {len(times)} tokens streamed")
    return {"gap": median([b - a for a, b in zip(times, times[1:])]), "total": times[-1] - start}


async def one_pair_side(target: Target, model: str, clients: int, seed: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=target.url, timeout=600,
                                 limits=httpx.Limits(max_connections=clients + 2)) as client:
        rows = await asyncio.gather(*(one_request(client, target, model, seed * 100 + i) for i in range(clients)))
    return {"gap": median([r["gap"] for r in rows]), "total": max(r["total"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=1024, help="context of one request (per slot)")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()
    bin_dir = llama_tools()
    if bin_dir is None:
        sys.exit("llama-server could not be built (benchmarks/build_llama_tools.sh)")
    targets: list[Target] = []
    try:
        targets.append(start_llamarun(args.model, args.threads, args.ctx, 16))
        targets.append(start_llama_server(bin_dir, model_path(args.model), args.threads, args.ctx))
        for target in targets:  # warm-up
            asyncio.run(one_pair_side(target, args.model, 1, 0))
        runs: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        for pair in range(args.pairs):
            for target in targets if pair % 2 == 0 else targets[::-1]:
                runs[target.name].append(asyncio.run(one_pair_side(target, args.model, args.clients, 1000 + pair)))
    finally:
        for target in targets:
            stop(target)
    base = runs[targets[1].name]
    print(f"model {args.model}, {args.threads} threads, {args.clients} concurrent clients, {args.pairs} pairs; "
          f"ratios are per pair, against llama-server")
    print(f"{'server':<22}{'gap median':>12}{'gap ratio':>11}{'request ratio':>15}")
    for name, rows in runs.items():
        gap = median([r["gap"] for r in rows]) * 1e3
        gap_ratio = median([r["gap"] / b["gap"] for r, b in zip(rows, base)])
        total_ratio = median([r["total"] / b["total"] for r, b in zip(rows, base)])
        print(f"{name:<22}{gap:>10.2f}ms{gap_ratio:>11.3f}{total_ratio:>15.3f}")


if __name__ == "__main__":
    main()
