"""pp512 / tg128 of one model in several weight formats, llamarun bench next to llama-bench.

Rounds are interleaved (every format and tool once per round, in a rotating order) so a busy
machine slows every format alike; the ratios to the first format are the result.

    LLAMARUN_HOME=/tmp/qbench python benchmarks/bench_quant.py smollm2 smollm2:q4_0 smollm2:q4_k_m smollm2:q8_0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import llama_tools, model_path  # noqa: E402


def llamarun_bench(name: str, threads: int) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, "-m", "llamarun", "bench", name, "-r", "1", "--levels", "1", "--json",
                           "-t", str(threads)], capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    return data["pp"]["tokens_per_s"], data["tg"]["tokens_per_s"]


def llama_bench(tools: Path, name: str, threads: int) -> tuple[float, float]:
    proc = subprocess.run([str(tools / "llama-bench"), "-m", str(model_path(name)), "-p", "512", "-n", "128",
                           "-r", "1", "-t", str(threads), "-o", "json"], capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] == 512 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] == 128 and r["n_prompt"] == 0)
    return pp, tg


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tools = llama_tools()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        order = args.models[r % len(args.models):] + args.models[:r % len(args.models)]
        for name in order:
            results.setdefault(("llamarun", name), []).append(llamarun_bench(name, args.threads))
            if tools is not None:
                results.setdefault(("llama-bench", name), []).append(llama_bench(tools, name, args.threads))
            print(f"round {r + 1}: {name}: llamarun {results[('llamarun', name)][-1]}, llama-bench "
                  f"{results.get(('llama-bench', name), [None])[-1]}", file=sys.stderr, flush=True)
    base = args.models[0]
    print(f"{'tool':12} {'model':18} {'pp512':>8} {'tg128':>8} {'pp x':>6} {'tg x':>6}")
    for (tool, name), samples in sorted(results.items()):
        pp = statistics.median(s[0] for s in samples)
        tg = statistics.median(s[1] for s in samples)
        bpp = statistics.median(s[0] for s in results[(tool, base)])
        btg = statistics.median(s[1] for s in results[(tool, base)])
        print(f"{tool:12} {name:18} {pp:8.1f} {tg:8.1f} {pp / bpp:6.2f} {tg / btg:6.2f}")
    print(json.dumps({f"{t}|{n}": s for (t, n), s in results.items()}))


if __name__ == "__main__":
    main()
