"""HTTP serving throughput: `llamarun serve` vs llama.cpp's llama-server and llama-cpp-python's server.

All servers get the same model, threads, per-request context and slots (``--parallel``, default
the largest client level, so no server queues clients another would serve at once; llama-cpp-python's
server has one slot whatever it is given), and the same clients in the same run: for 1, 8 and 16 concurrent clients, each client streams one OpenAI chat completion
(`/v1/chat/completions`, 128 new tokens, end-of-generation ignored).  Reported per level:
aggregate tokens/s (all completion tokens / wall time from the first request to the last token)
and time to first token p50/p95 as the clients see it.  All servers stay up side by side and the
rounds interleave them level by level (this host's speed drifts by +-30% within minutes); the
best round of each is reported (tokens/s and its TTFTs), with the median of the per-round ratios
and the number of rounds at least as fast as llama-server next to it, and the median TTFT p95
over all rounds.  The order of the levels matters: llama-server's first token at 1 client takes
0.15 s right after a 16-client level and 0.06-0.08 s otherwise (`--levels 1,8` shows the latter);
part of that is its prompt cache in RAM (`--cache-ram`, on by default), which it fills and
searches as slots change hands.

    python benchmarks/bench_http.py [--model smollm2] [--threads 2] [--levels 1,8,16]
        [--parallel 16 (slots of every server)] [--rounds 3] [--lcpp-python /work/cache/lcpp-server-venv/bin/python] [--skip llama-cpp-python]
        [--stream-interval 4] [--json out.json]
    python benchmarks/bench_http.py --pool a.json --pool b.json   # one report over the rounds of several runs

``--stream-interval N`` adds a second llamarun that streams N tokens per chunk after the first
(fewer wake-ups for the server and the client: throughput on a small machine, at the cost of
smoothness); the first llamarun always streams every token, as llama-server does.

llama-server comes from benchmarks/build_llama_tools.sh (`-np` = the slots above, `-c` = slots x context);
llama-cpp-python's server needs its [server] extra in a separate virtualenv (never the project's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, dump, llama_tools, median, model_path, percentile

N_GEN = 128
TOPICS = ["the sea", "a lighthouse", "a dragon", "the moon", "a robot", "a forest", "a city", "a river",
          "a mountain", "a ship", "a garden", "a library", "a desert", "a storm", "a train", "a castle"]
EOG_BIAS = {"0": -100, "2": -100}  # SmolLM2's <|endoftext|> and <|im_end|>, for servers without ignore_eos


@dataclass
class Target:
    name: str
    proc: subprocess.Popen
    url: str
    extra: dict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


def start_llamarun(model: str, threads: int, ctx: int, parallel: int, *extra: str) -> Target:
    cmd = [sys.executable, "-m", "llamarun", "serve", "--port", "0", "--threads", str(threads), "--ctx", str(ctx),
           "--parallel", str(parallel), "--keep-alive", "-1", "--preload", model, "--max-queue", "256", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("listening on "):
            url = line.split()[-1]
            wait_ready(url, proc, "/health")
            return Target(" ".join(["llamarun", *extra]), proc, url, {"ignore_eos": True})
    raise RuntimeError("llamarun serve did not start")


def start_llama_server(bin_dir: Path, path: Path, threads: int, ctx: int, slots: int) -> Target:
    port = free_port()
    cmd = [str(bin_dir / "llama-server"), "-m", str(path), "-np", str(slots), "-t", str(threads),
           "-c", str(ctx * slots), "--host", "127.0.0.1", "--port", str(port), "--no-webui"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, "/health")
    return Target(f"llama-server -np {slots}", proc, url, {"ignore_eos": True})


def start_lcpp_server(python: str, path: Path, threads: int, ctx: int) -> Target:
    port = free_port()
    cmd = [python, "-m", "llama_cpp.server", "--model", str(path), "--n_threads", str(threads),
           "--n_ctx", str(ctx), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, "/v1/models")
    return Target("llama-cpp-python server", proc, url, {"logit_bias": EOG_BIAS})


def chat_body(target: Target, model: str, question: str, seed: int, **extra: Any) -> dict:
    """The streamed OpenAI chat completion every benchmark here sends: N_GEN tokens at temperature 0.8."""
    return {"model": model, "stream": True, "max_tokens": N_GEN, "temperature": 0.8, "seed": seed,
            "messages": [{"role": "user", "content": question}], **extra, **target.extra}


async def one_request(client: httpx.AsyncClient, target: Target, model: str, i: int, level: int) -> dict:
    question = f"Write a long story about {TOPICS[i % len(TOPICS)]} (story {level}.{i})."  # never fully cached
    body = chat_body(target, model, question, i, stream_options={"include_usage": True})
    start = time.perf_counter()
    first = None
    tokens = 0
    usage = None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return {"error": f"{response.status_code} {response.text[:200]}"}
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                usage = event.get("usage") or usage
                choices = event.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter()
    except httpx.HTTPError:  # the server cut the stream (llama-cpp-python does, under concurrency)
        pass
    end = time.perf_counter()
    if usage and usage.get("completion_tokens"):  # a chunk may carry several tokens (UTF-8, held text)
        tokens = int(usage["completion_tokens"])
    return {"start": start, "first": first or end, "end": end, "tokens": tokens}


async def run_level(target: Target, model: str, level: int, tag: int | None = None) -> dict:
    async with httpx.AsyncClient(base_url=target.url, timeout=600,
                                 limits=httpx.Limits(max_connections=level + 2)) as client:
        begin = time.perf_counter()
        results = await asyncio.gather(*(one_request(client, target, model, i, level if tag is None else tag)
                                         for i in range(level)))
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    end = max((r["end"] for r in ok), default=begin)
    ttfts = [r["first"] - r["start"] for r in ok]
    return {"tok_s": sum(r["tokens"] for r in ok) / (end - begin), "ttft_p50": median(ttfts),
            "ttft_p95": percentile(ttfts, 0.95), "tokens": [r["tokens"] for r in ok], "errors": errors}


def stop(target: Target) -> None:
    target.proc.terminate()
    try:
        target.proc.wait(30)
    except subprocess.TimeoutExpired:
        target.proc.kill()


def bench(targets: list[Target], model: str, levels: list[int], rounds: int) -> dict[str, dict[int, list[dict]]]:
    """Every server stays up; rounds interleave them level by level, as the host's speed drifts."""
    for target in targets:
        asyncio.run(run_level(target, model, 1, tag=0))  # warm-up (also caches the chat template's system prompt)
    runs: dict[str, dict[int, list[dict]]] = {t.name: {level: [] for level in levels} for t in targets}
    for round_ in range(rounds):
        for level in levels:
            for target in targets if round_ % 2 == 0 else targets[::-1]:  # ABC CBA ...: a drift hits all alike
                row = asyncio.run(run_level(target, model, level, tag=level + 100 * round_))
                runs[target.name][level].append(row)
                print(f"  round {round_ + 1}: {target.name}: {level} clients: {row['tok_s']:.1f} tok/s, "
                      f"TTFT p50 {row['ttft_p50']:.2f}s p95 {row['ttft_p95']:.2f}s", file=sys.stderr, flush=True)
                time.sleep(1)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=1024, help="context of one request (per slot)")
    parser.add_argument("--levels", default="1,8,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=0,
                        help="slots of every server: llamarun --parallel, llama-server -np (default: the largest level)")
    parser.add_argument("--lcpp-python", default=os.environ.get("LCPP_SERVER_PYTHON",
                                                                "/work/cache/lcpp-server-venv/bin/python"))
    parser.add_argument("--skip", action="append", default=[], help="llamarun, llama-server, llama-cpp-python")
    parser.add_argument("--stream-interval", type=int, default=0,
                        help="also run a llamarun with `serve --stream-interval N` (N tokens per chunk)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--pool", action="append", default=[],
                        help="report over the rounds of earlier --json files instead of running (repeatable)")
    args = parser.parse_args()
    if args.pool:
        runs = pooled(args.pool)
        first = next(iter(runs.values()))
        levels = sorted(first)
        args.rounds = len(first[levels[0]])  # every server has as many rounds at every level
        print(f"pooled over {len(args.pool)} runs (model, threads and context as given here: the files do not say)")
        report(runs, levels, args)
        return
    levels = [int(x) for x in args.levels.split(",")]
    args.parallel = args.parallel or max(levels)
    path = model_path(args.model)
    targets: list[Target] = []
    try:
        if "llamarun" not in args.skip:
            targets.append(start_llamarun(args.model, args.threads, args.ctx, args.parallel))
            if args.stream_interval > 1:
                targets.append(start_llamarun(args.model, args.threads, args.ctx, args.parallel,
                                              "--stream-interval", str(args.stream_interval)))
        bin_dir = llama_tools() if "llama-server" not in args.skip else None
        if bin_dir is not None:
            targets.append(start_llama_server(bin_dir, path, args.threads, args.ctx, args.parallel))
        if "llama-cpp-python" not in args.skip and Path(args.lcpp_python).exists():
            targets.append(start_lcpp_server(args.lcpp_python, path, args.threads, args.ctx))
        runs = bench(targets, args.model, levels, args.rounds)
    finally:
        for target in targets:
            stop(target)
    report(runs, levels, args)
    dump(args.json, {name: {str(k): v for k, v in rows.items()} for name, rows in runs.items()})


def pooled(paths: list[str]) -> dict[str, dict[int, list[dict]]]:
    """The rounds of several ``--json`` files, run after run (servers and levels that every run has)."""
    loaded = [json.loads(Path(p).read_text()) for p in paths]
    names = [n for n in loaded[0] if all(n in data for data in loaded)]
    levels = [lv for lv in loaded[0][names[0]] if all(lv in data[n] for data in loaded for n in names)] if names else []
    if not levels:
        sys.exit("the runs have no server and level in common")
    for path, data in zip(paths, loaded, strict=True):  # rounds pair up by position within each run
        if any(len({len(data[n][lv]) for n in names}) > 1 for lv in levels):
            sys.exit(f"{path}: the servers have different numbers of rounds")
    return {n: {int(lv): [row for data in loaded for row in data[n][lv]] for lv in levels} for n in names}


def report(runs: dict[str, dict[int, list[dict]]], levels: list[int], args: argparse.Namespace) -> None:
    """Best round per server and level; the ratio is best vs best, and (in brackets) the median of the
    per-round ratios and in how many rounds the server was at least as fast as llama-server."""
    slots = f"{args.parallel} slots each" if args.parallel else "slots as given to each run"
    print(f"model {args.model}, {args.threads} threads, context {args.ctx} per request, {slots}, {N_GEN} new "
          f"tokens each, OpenAI streaming chat, best of {args.rounds} interleaved rounds")
    base_name = next((n for n in runs if n.startswith("llama-server")), None)
    print(f"{'clients':>7}  {'server':<30}{'tok/s':>8}{'vs llama-server':>28}{'TTFT p50':>10}{'TTFT p95':>10}"
          f"{'p95 median':>11}  notes")
    for level in levels:
        base_runs = runs[base_name][level] if base_name else None
        for name, rows in runs.items():
            row = max(rows[level], key=lambda r: r["tok_s"])
            ratio = "-"
            if base_runs:
                best_base = max(r["tok_s"] for r in base_runs)
                ratios = [r["tok_s"] / b["tok_s"] for r, b in zip(rows[level], base_runs) if b["tok_s"]]
                wins = sum(x >= 1 for x in ratios)
                ratio = f"{row['tok_s'] / best_base:.2f}x ({median(ratios):.2f}x, {wins}/{len(ratios)})"
            short = [t for t in row["tokens"] if t < N_GEN]
            notes = "; ".join(filter(None, [f"{len(row['errors'])} errors" if row["errors"] else "",
                                            f"{len(short)} streams cut short" if short else ""]))
            p95 = median([r["ttft_p95"] for r in rows[level]])
            print(f"{level:>7}  {name:<30}{row['tok_s']:>8.1f}{ratio:>28}{row['ttft_p50']:>9.2f}s"
                  f"{row['ttft_p95']:>9.2f}s{p95:>11.2f}s  {notes}")


if __name__ == "__main__":
    main()
