"""Single-stream speed: llamarun vs llama.cpp's llama-bench vs llama-cpp-python's high-level Llama.

pp512: prompt processing of 512 tokens; tg128: generation of 128 tokens (tokens/s), all with the
same model and threads, in this one run.  A shared VM's speed drifts by tens of percent within a
minute, so the contenders take turns in short rounds (one pp512 and one tg128 each, a few seconds),
the order reversed every other round, and the ratio to llama-bench is taken within each round:
the report gives the median of those paired ratios, and the best round of each contender.

Each Python contender is a worker process of its own that stays up between rounds (OpenMP thread
pools in one process would otherwise compete with the next contender's); llama-bench runs once per
round.  Ours goes through the public library API (runtime, sampler, detokenizer included), which
is what users get.

    python benchmarks/bench_engine.py [--model smollm2] [--threads 2] [--rounds 15] [--reps 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from common import dump, llama_tools, median, model_path, random_tokens

import llamarun

Measure = Callable[[int], dict[str, float]]


def llama_bench_round(bin_dir, path, threads: int, reps: int) -> dict[str, float]:
    cmd = [str(bin_dir / "llama-bench"), "-m", str(path), "-t", str(threads), "-p", "512", "-n", "128",
           "-r", str(reps), "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    results = {}
    for entry in json.loads(out):
        key = "pp512" if entry["n_prompt"] else "tg128"
        results[key] = max(float(x) for x in entry["samples_ts"])  # best repetition, as for the others
    return results


def ours(path, threads: int) -> Iterator[Measure]:
    with llamarun.load(path, n_ctx=2048, n_slots=1, n_threads=threads) as model:
        n_vocab = model.info.n_vocab
        bos = model.tokenize("", add_special=True) or [0]
        model.generate(random_tokens(32, n_vocab, 0), max_tokens=4, temperature=0)  # warm-up

        def measure(round_: int) -> dict[str, float]:
            r = model.generate(random_tokens(512, n_vocab, 100 + round_), max_tokens=1, temperature=0)
            pp = 512 / r.timings.prompt_s
            r = model.generate(bos, max_tokens=128, temperature=0, ignore_eos=True)
            return {"pp512": pp, "tg128": (r.timings.generated_tokens - 1) / r.timings.generate_s}

        yield measure


def high_level_llama(path, threads: int) -> Iterator[Measure]:
    from llama_cpp import Llama  # the baseline being replaced; never used inside llamarun/

    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_batch=512, flash_attn=True, verbose=False)

    def measure(round_: int) -> dict[str, float]:
        llm.reset()
        start = time.perf_counter()
        llm.eval(random_tokens(512, llm.n_vocab(), 200 + round_))
        pp = 512 / (time.perf_counter() - start)
        llm.reset()
        count, start = 0, time.perf_counter()
        for _ in llm.generate([llm.token_bos()], temp=0.0, top_k=1, reset=True):
            count += 1
            if count == 1:
                start = time.perf_counter()
            if count == 128:
                break
        return {"pp512": pp, "tg128": 127 / (time.perf_counter() - start)}

    try:
        yield measure
    finally:
        llm.close()


WORKERS = {"llamarun": ours, "llama-cpp-python Llama": high_level_llama}


def serve_worker(name: str, path, threads: int, reps: int) -> None:
    """Worker process: one line on stdin (the round number) -> one JSON line of best-of-``reps`` figures."""
    for measure in WORKERS[name](path, threads):
        print("ready", flush=True)
        for line in sys.stdin:
            runs = [measure(int(line)) for _ in range(reps)]
            print(json.dumps({k: max(r[k] for r in runs) for k in ("pp512", "tg128")}), flush=True)


class Worker:
    def __init__(self, name: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
               "--reps", str(args.reps), "--worker", name]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            raise RuntimeError(f"{name} worker did not start")

    def __call__(self, round_: int) -> dict[str, float]:
        self.proc.stdin.write(f"{round_}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(60)


def run_rounds(contenders: dict[str, Measure], rounds: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:  # ABC CBA ...: a drift hits all alike
            results[name].append(contenders[name](round_))
        print(f"  round {round_ + 1}: " + ", ".join(
            f"{n} {results[n][-1]['pp512']:.0f}/{results[n][-1]['tg128']:.1f}" for n in names), file=sys.stderr)
    return results


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, path) -> dict:
    base = results.get("llama-bench")
    print(f"model {path.name}, {args.threads} threads, {args.rounds} interleaved rounds; tokens/s of the best round, "
          f"ratio = median of the per-round ratios to llama-bench (best round's ratio in brackets)")
    print(f"{'':26} {'pp512 tok/s':>12} {'tg128 tok/s':>12} {'pp vs base':>17} {'tg vs base':>17}")
    rows = {}
    for name, runs in results.items():
        best = {k: max(r[k] for r in runs) for k in ("pp512", "tg128")}
        row = dict(best)
        ratios = ""
        if base:
            for k in ("pp512", "tg128"):
                row[f"{k}_ratio"] = median([a[k] / b[k] for a, b in zip(runs, base)])
                ratios += f"{row[f'{k}_ratio']:>9.2f}x ({best[k] / max(b[k] for b in base):.2f}x)"
        rows[name] = row
        print(f"{name:26} {best['pp512']:>12.1f} {best['tg128']:>12.1f} {ratios}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=1, help="repetitions inside each contender's turn (best counts)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = model_path(args.model)
    if args.worker:
        serve_worker(args.worker, path, args.threads, args.reps)
        return
    bin_dir = llama_tools()
    contenders: dict[str, Measure] = {}
    if bin_dir is not None:
        contenders["llama-bench"] = lambda _round: llama_bench_round(bin_dir, path, args.threads, args.reps)
    workers = [Worker(name, args) for name in WORKERS]
    try:
        contenders.update({name: w for name, w in zip(WORKERS, workers)})
        results = run_rounds(contenders, args.rounds)
    finally:
        for w in workers:
            w.close()
    dump(args.json, {"rounds": results, "summary": report(results, args, path)})


if __name__ == "__main__":
    main()
