"""Single-stream speed: llamarun vs llama.cpp's llama-bench vs llama-cpp-python's high-level Llama.

pp512: prompt processing of 512 tokens; tg128: generation of 128 tokens (tokens/s), all with the
same model and threads, in this one run.  The three are measured in interleaved rounds and the
best round of each is reported, so that a noisy neighbour slows every contender alike.  Each
contender runs in a process of its own: OpenMP thread pools left in a process by one contender
would otherwise compete with the next one's.  Ours goes through the public library API (runtime,
sampler, detokenizer included), which is what users get.

    python benchmarks/bench_engine.py [--model smollm2] [--threads 2] [--rounds 6] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import dump, llama_tools, median, model_path, random_tokens

import llamarun


def bench_llama_bench(bin_dir, path, threads: int, reps: int) -> dict[str, float]:
    cmd = [str(bin_dir / "llama-bench"), "-m", str(path), "-t", str(threads), "-p", "512", "-n", "128",
           "-r", str(reps), "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    results = {}
    for entry in json.loads(out):
        key = "pp512" if entry["n_prompt"] else "tg128"
        results[key] = max(float(x) for x in entry["samples_ts"])  # best repetition, as for the others
    return results


def bench_ours(path, threads: int, reps: int) -> dict[str, float]:
    pp, tg = [], []
    with llamarun.load(path, n_ctx=2048, n_slots=1, n_threads=threads) as model:
        n_vocab = model.info.n_vocab
        model.generate(random_tokens(32, n_vocab, 0), max_tokens=4, temperature=0)  # warm-up
        for rep in range(reps):
            r = model.generate(random_tokens(512, n_vocab, 100 + rep), max_tokens=1, temperature=0)
            pp.append(512 / r.timings.prompt_s)
            bos = model.tokenize("", add_special=True) or [0]
            r = model.generate(bos, max_tokens=128, temperature=0, ignore_eos=True)
            tg.append((r.timings.generated_tokens - 1) / r.timings.generate_s)
    return {"pp512": max(pp), "tg128": max(tg)}


def bench_high_level_llama(path, threads: int, reps: int) -> dict[str, float]:
    from llama_cpp import Llama  # the baseline being replaced; never used inside llamarun/

    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_batch=512, flash_attn=True, verbose=False)
    try:
        pp, tg = [], []
        for rep in range(reps):
            tokens = random_tokens(512, llm.n_vocab(), 200 + rep)
            llm.reset()
            start = time.perf_counter()
            llm.eval(tokens)
            pp.append(512 / (time.perf_counter() - start))
            llm.reset()
            count, start = 0, None
            for _ in llm.generate([llm.token_bos()], temp=0.0, top_k=1, reset=True):
                count += 1
                if count == 1:
                    start = time.perf_counter()
                if count == 128:
                    break
            tg.append(127 / (time.perf_counter() - start))
    finally:
        llm.close()
    return {"pp512": max(pp), "tg128": max(tg)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--reps", type=int, default=3, help="repetitions inside each contender's process")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = model_path(args.model)
    bin_dir = llama_tools()
    contenders = {"llamarun": bench_ours, "llama-cpp-python Llama": bench_high_level_llama}
    if bin_dir is not None:
        contenders = {"llama-bench": lambda p, t, r: bench_llama_bench(bin_dir, p, t, r), **contenders}
    if args.worker:
        print(json.dumps(contenders[args.worker](path, args.threads, args.reps)))
        return
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name in contenders:
            out = subprocess.run([sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
                                  "--reps", str(args.reps), "--worker", name],
                                 capture_output=True, text=True, check=True).stdout
            rounds[name].append(json.loads(out.strip().splitlines()[-1]))
    rows = {name: {k: max(r[k] for r in results) for k in ("pp512", "tg128")} for name, results in rounds.items()}
    base = rows.get("llama-bench")
    print(f"model {path.name}, {args.threads} threads, best of {args.rounds} interleaved rounds "
          f"({args.reps} repetitions each); in brackets the median of the per-round ratios")
    print(f"{'':26} {'pp512 tok/s':>12} {'tg128 tok/s':>12} {'pp vs base':>17} {'tg vs base':>17}")
    for name, r in rows.items():
        ratios = ""
        if base:
            paired = {k: median([a[k] / b[k] for a, b in zip(rounds[name], rounds["llama-bench"])])
                      for k in ("pp512", "tg128")}
            ratios = "".join(f"{r[k] / base[k]:>9.2f}x ({paired[k]:.2f}x)" for k in ("pp512", "tg128"))
        print(f"{name:26} {r['pp512']:>12.1f} {r['tg128']:>12.1f} {ratios}")
    dump(args.json, rows)


if __name__ == "__main__":
    main()
