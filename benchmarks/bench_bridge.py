"""The socket bridge next to HTTP on the same runtime settings: round-trip overhead and streaming.

One `llamarun bridge` and one `llamarun serve` run side by side over the same store with the same
settings (model, threads, slots, context). Each round, interleaved:

- PING round trip p50/p99 on the bridge (one connection, one command at a time) next to the
  cheapest HTTP round trip (`GET /health/live` on a kept-alive connection): the protocol's own cost;
  and next to the floor, a minimal asyncio Unix-socket server in its own process that answers each
  line with the same pong line (what two Python event loops cost, with no protocol at all);
- STREAM tokens/s at 1 and 8 clients (N_GEN tokens each, end-of-generation ignored, temperature 0)
  next to the same requests as streamed Ollama `/api/generate` calls.

Reported: the best round of each (tokens/s), the median of the per-round ratios bridge/HTTP, and
latency percentiles over all rounds.

    python benchmarks/bench_bridge.py [--model smollm2] [--threads 2] [--rounds 3] [--pings 2000]
                                      [--max-seconds S] [--json out.json]

``--max-seconds`` starts no new round after S seconds (on a shared machine a round takes 10 s to a
minute); the report covers the rounds that ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import ROOT, dump, median, percentile

N_GEN = 64
TOPICS = ["the sea", "a lighthouse", "a dragon", "the moon", "a robot", "a forest", "a city", "a river"]


def _start(cmd: list[str], env: dict[str, str], marker: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(marker):
            return proc, line.strip().removeprefix(marker)
    raise RuntimeError(f"{cmd[3]} did not start")


async def _bridge_conn(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(path, limit=1 << 22)


async def _cmd(r: asyncio.StreamReader, w: asyncio.StreamWriter, line: str) -> dict:
    w.write(line.encode() + b"\n")
    await w.drain()
    return json.loads(await r.readline())


ECHO_SERVER = """
import asyncio, sys
async def answer(r, w):
    while await r.readline():
        w.write(b'{"status":"ok","message":"pong","data":null}\\n')
        await w.drain()
async def main():
    server = await asyncio.start_unix_server(answer, sys.argv[1])
    print("listening on unix:" + sys.argv[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


async def bridge_pings(path: str, n: int) -> list[float]:
    r, w = await _bridge_conn(path)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        w.write(b"PING\n")
        await r.readline()
        times.append(time.perf_counter() - t)
    w.close()
    return times


async def http_pings(url: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(n):
            t = time.perf_counter()
            await client.get("/health/live")
            times.append(time.perf_counter() - t)
    return times


async def bridge_stream(path: str, model: str, topic: str) -> int:
    r, w = await _bridge_conn(path)
    for line in (f"LOAD {model}", f"SET max_tokens {N_GEN}", "SET ignore_eos true", "SET temperature 0"):
        assert (await _cmd(r, w, line))["status"] == "ok"
    w.write(f"STREAM Write a story about {topic}.\n".encode())
    while True:
        reply = json.loads(await r.readline())
        if reply["message"] != "chunk":
            w.close()
            return reply["data"]["completion_tokens"]


async def http_stream(client: httpx.AsyncClient, model: str, topic: str) -> int:
    body = {"model": model, "prompt": f"Write a story about {topic}.", "stream": True,
            "options": {"num_predict": N_GEN, "ignore_eos": True, "temperature": 0}}
    async with client.stream("POST", "/api/generate", json=body) as response:
        async for line in response.aiter_lines():
            if line and json.loads(line).get("done"):
                return json.loads(line)["eval_count"]
    return 0


async def level(run, clients: int) -> float:
    started = time.perf_counter()
    tokens = await asyncio.gather(*(run(TOPICS[i % len(TOPICS)]) for i in range(clients)))
    return sum(tokens) / (time.perf_counter() - started)


async def rounds(args: argparse.Namespace, sock: str, url: str, echo: str) -> dict:
    out: dict = {"ping": {"bridge": [], "floor": [], "http": []}, "stream": {}, "rounds": 0}
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await level(lambda t: bridge_stream(sock, args.model, t), 1)  # warm both
        await level(lambda t: http_stream(client, args.model, t), 1)
        for i in range(args.rounds):
            if args.max_seconds is not None and time.perf_counter() - began > args.max_seconds:
                print(f"time budget of {args.max_seconds:.0f} s spent: {i} rounds", flush=True)
                break
            started = time.perf_counter()
            pings = {"bridge": await bridge_pings(sock, args.pings), "floor": await bridge_pings(echo, args.pings),
                     "http": await http_pings(url, args.pings)}
            for name, times in pings.items():
                out["ping"][name] += times
                print(f"round {i + 1}: {name:6s} round trip p50 {percentile(times, 0.5) * 1e3:.3f} ms, "
                      f"p99 {percentile(times, 0.99) * 1e3:.3f} ms", flush=True)
            for clients in (1, 8):
                first, second = ("bridge", "http") if i % 2 == 0 else ("http", "bridge")
                for name in (first, second):
                    run = ((lambda t: bridge_stream(sock, args.model, t)) if name == "bridge"
                           else (lambda t: http_stream(client, args.model, t)))
                    rate = await level(run, clients)
                    out["stream"].setdefault(f"{name}@{clients}", []).append(rate)
                    print(f"round {i + 1}: {name:6s} {clients} client(s): {rate:6.1f} tok/s", flush=True)
            out["rounds"] = i + 1
            print(f"round {i + 1}: {time.perf_counter() - started:.0f} s", flush=True)
    return out


def report(out: dict) -> None:
    for name, times in out["ping"].items():
        print(f"{name:6s} round trip: p50 {percentile(times, 0.5) * 1e3:.3f} ms, p99 {percentile(times, 0.99) * 1e3:.3f} ms")
    bridge_p50, floor_p50, http_p50 = (percentile(out["ping"][k], 0.5) for k in ("bridge", "floor", "http"))
    print(f"round trip p50 ratio http/bridge: {http_p50 / bridge_p50:.2f}x; bridge/floor: {bridge_p50 / floor_p50:.2f}x")
    for clients in (1, 8):
        b, h = out["stream"][f"bridge@{clients}"], out["stream"][f"http@{clients}"]
        ratios = [x / y for x, y in zip(b, h)]
        print(f"STREAM {clients} client(s): bridge best {max(b):.1f} tok/s, http best {max(h):.1f} tok/s, "
              f"median ratio bridge/http {median(ratios):.3f} ({sum(r >= 1 for r in ratios)}/{len(ratios)} rounds >= 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, help="start no new round after this many seconds")
    parser.add_argument("--json")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="bb", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir), "PYTHONUNBUFFERED": "1"}
    common = ["--threads", str(args.threads), "--parallel", "8", "--ctx", "512", "--keep-alive", "-1"]
    bridge, sock = _start([sys.executable, "-m", "llamarun", "bridge", *common, "--model", args.model], env,
                          "listening on unix:")
    serve, url = _start([sys.executable, "-m", "llamarun", "serve", "--port", "0", *common, "--preload", args.model],
                        env, "listening on ")
    floor, echo = _start([sys.executable, "-c", ECHO_SERVER, str(run_dir / "echo.sock")], env, "listening on unix:")
    try:
        out = asyncio.run(rounds(args, sock, url, echo))
    finally:
        for proc in (bridge, serve, floor):
            proc.terminate()
            proc.wait(60)
    report(out)
    dump(args.json, out)


if __name__ == "__main__":
    main()
