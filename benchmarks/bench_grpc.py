"""Streaming over gRPC (llamarun.v1 Generate) next to HTTP (OpenAI /v1/completions SSE) on one server.

One `llamarun serve --grpc-port 0` (same process, same model, same slots) answers both. For 1, 8 and
16 concurrent clients, each client streams one raw-prompt completion (``--tokens`` new tokens,
end-of-generation ignored, default sampling). Rounds interleave the protocols level by level
(alternating which goes first); reported per level and protocol: the best round's aggregate tokens/s
(all completion tokens / wall time from the first request to the last token) and TTFT p50/p95 as the
clients see it, the CPU time per token of the server process (the model's own work included) and of
this client process (medians), plus
the median over rounds of the per-round ratio gRPC/HTTP (tokens/s; TTFT p50).

    python benchmarks/bench_grpc.py [--model smollm2] [--threads 2] [--levels 1,8,16] [--tokens 64]
        [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import grpc
import httpx
from common import ROOT, dump, median, percentile

from llamarun.grpc.v1 import llamarun_pb2 as pb
from llamarun.grpc.v1 import llamarun_pb2_grpc as pb_grpc

TOPICS = ["the sea", "a lighthouse", "a dragon", "the moon", "a robot", "a forest", "a city", "a river",
          "a mountain", "a ship", "a garden", "a library", "a desert", "a storm", "a train", "a castle"]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str, str]:
    parallel = max(args.levels)
    cmd = [sys.executable, "-m", "llamarun", "serve", "--port", "0", "--grpc-port", "0", "--threads",
           str(args.threads), "--parallel", str(parallel), "--ctx", str(args.tokens + 64), "--keep-alive", "-1",
           "--preload", args.model, "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    grpc_target = http_url = ""
    assert proc.stdout is not None
    while not (grpc_target and http_url):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited with {proc.wait()}")
        if line.startswith("grpc listening on "):
            grpc_target = line.split()[-1]
        elif line.startswith("listening on "):
            http_url = line.split()[-1]
    return proc, grpc_target, http_url


async def grpc_client(stub: Any, model: str, prompt: str, tokens: int) -> tuple[float, int]:
    started, ttft, n = time.perf_counter(), 0.0, 0
    request = pb.GenerateRequest(model=model, text=prompt, max_tokens=tokens, sampling=pb.SamplingParams(ignore_eos=True))
    async for response in stub.Generate(request):
        if response.WhichOneof("response") == "chunk" and response.chunk.token_ids:
            if not n:
                ttft = time.perf_counter() - started
            n += len(response.chunk.token_ids)
    return ttft, n


async def http_client(client: httpx.AsyncClient, model: str, prompt: str, tokens: int) -> tuple[float, int]:
    started, ttft, n = time.perf_counter(), 0.0, 0
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("choices") and event["choices"][0].get("text") and not ttft:
                ttft = time.perf_counter() - started
            if event.get("usage"):
                n = event["usage"]["completion_tokens"]
    return ttft, n


def cpu_seconds(server: Any) -> float:
    times = server.cpu_times()
    return times.user + times.system


async def level(name: str, run: Any, clients: int, tokens: int, model: str, round_no: int,
                server: Any) -> dict[str, float]:
    """One level of one protocol (prompts of its own: no prefix cached by the other's round)."""
    prompts = [f"Round {round_no} ({name}). Write a long story about {TOPICS[i % len(TOPICS)]}." for i in range(clients)]
    cpu, client_cpu = cpu_seconds(server), time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(*(run(model, p, tokens) for p in prompts))
    wall = time.perf_counter() - started
    cpu, client_cpu = cpu_seconds(server) - cpu, time.process_time() - client_cpu
    ttfts = [t for t, _ in results]
    assert all(n == tokens for _, n in results), results
    total = sum(n for _, n in results)
    return {"tok_s": total / wall, "ttft_p50": percentile(ttfts, 0.5), "ttft_p95": percentile(ttfts, 0.95),
            "server_cpu_ms_per_token": 1000 * cpu / total, "client_cpu_ms_per_token": 1000 * client_cpu / total}


async def bench(args: argparse.Namespace, grpc_target: str, http_url: str, pid: int) -> dict[str, Any]:
    import psutil

    server = psutil.Process(pid)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    rounds: dict[str, dict[int, list[dict[str, float]]]] = {"grpc": {}, "http": {}}
    async with grpc.aio.insecure_channel(grpc_target) as channel, \
            httpx.AsyncClient(base_url=http_url, timeout=600, limits=limits) as client:
        stub = pb_grpc.LlamarunStub(channel)
        runs = {"grpc": lambda m, p, t: grpc_client(stub, m, p, t), "http": lambda m, p, t: http_client(client, m, p, t)}
        for name in runs:  # warm both paths (connections, the prompt path)
            await level(name, runs[name], 2, 4, args.model, -1, server)
        for r in range(args.rounds):
            for clients in args.levels:
                order = ("grpc", "http") if (r + clients) % 2 == 0 else ("http", "grpc")
                for name in order:
                    rounds[name].setdefault(clients, []).append(await level(name, runs[name], clients, args.tokens,
                                                                           args.model, r, server))
    return rounds


def report(rounds: dict[str, dict[int, list[dict[str, float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    print(f"{'clients':>7} {'proto':>5} {'tok/s':>8} {'TTFT p50':>9} {'p95':>7} {'CPU/tok server':>15} {'client':>8}"
          "   gRPC/HTTP tok/s  TTFT p50")
    for clients in rounds["grpc"]:
        per: dict[str, Any] = {}
        for name in ("grpc", "http"):
            best = max(rounds[name][clients], key=lambda x: x["tok_s"])
            per[name] = best
            cpu = median([x["server_cpu_ms_per_token"] for x in rounds[name][clients]])
            client = median([x["client_cpu_ms_per_token"] for x in rounds[name][clients]])
            print(f"{clients:>7} {name:>5} {best['tok_s']:>8.1f} {best['ttft_p50']:>8.3f}s {best['ttft_p95']:>6.3f}s"
                  f" {cpu:>12.2f} ms {client:>5.2f} ms")
        pairs = list(zip(rounds["grpc"][clients], rounds["http"][clients], strict=True))
        per["ratio_tok_s"] = median([g["tok_s"] / h["tok_s"] for g, h in pairs])
        per["ratio_ttft_p50"] = median([g["ttft_p50"] / h["ttft_p50"] for g, h in pairs if h["ttft_p50"]])
        print(f"{'':>59}   {per['ratio_tok_s']:>15.3f}  {per['ratio_ttft_p50']:>8.3f}")
        out[str(clients)] = per
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 16])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    proc, grpc_target, http_url = start_server(args)
    try:
        rounds = asyncio.run(bench(args, grpc_target, http_url, proc.pid))
    finally:
        proc.terminate()
        proc.wait(60)
    summary = report(rounds)
    if args.json:
        dump(args.json, {"args": vars(args), "rounds": rounds, "summary": summary})


if __name__ == "__main__":
    main()
