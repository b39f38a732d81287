"""The NumPy reference backend next to llama.cpp, same model, same machine, same run.

Engine level (the interface the runtime drives, greedy argmax over the logits, no sampler):
prefill of a ``--prompt``-token prompt in one decode, and decode of ``--tokens`` tokens with 1 and
with 4 sequences in each decode (4 streams: one batch of 4 tokens per step).  The two backends
take turns in ``--rounds`` rounds and the report gives each one's median and the ratio of the
medians.  numpy's BLAS is limited to ``--threads`` threads with threadpoolctl, as llama.cpp is, and reported as threadpoolctl sees it (library, version, the kernel's core
type, threads).  This machine's environment may set ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``;
``--unset-openblas-env`` runs the NumPy part once more in a child process without both, to show
the kernel OpenBLAS then picks and what it costs.

    python benchmarks/bench_numpy.py [--model smollm2] [--threads 2] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
from common import dump, env_threads, median, model_path, random_tokens

from llamarun import engine, numpy_engine
from llamarun.types import ContextOptions


def blas_info() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()]


def _prefill(ctx: Any, batch: Any, tokens: list[int]) -> float:
    ctx.clear_memory()
    batch.clear()
    batch.add_tokens(tokens, 0, 0)
    start = time.perf_counter()
    ctx.decode(batch)
    return len(tokens) / (time.perf_counter() - start)


def _decode(ctx: Any, batch: Any, prompts: list[list[int]], n_tokens: int) -> float:
    """Tokens/s generating ``n_tokens`` per sequence, all sequences in each decode."""
    ctx.clear_memory()
    batch.clear()
    last = [batch.add_tokens(p, 0, seq) for seq, p in enumerate(prompts)]
    ctx.decode(batch)
    lengths = [len(p) for p in prompts]
    start = time.perf_counter()
    for _ in range(n_tokens):
        picks = [int(np.argmax(ctx.logits_view(i))) for i in last]
        batch.clear()
        last = [batch.add(t, lengths[s], s, True) for s, t in enumerate(picks)]
        lengths = [n + 1 for n in lengths]
        ctx.decode(batch)
    return n_tokens * len(prompts) / (time.perf_counter() - start)


def measure(model: Any, context_type: Any, batch_type: Any, args: argparse.Namespace) -> dict[str, float]:
    options = ContextOptions(n_ctx=4 * 512, n_batch=max(512, args.prompt), n_seq_max=4, n_threads=args.threads,
                             n_threads_batch=args.threads)
    ctx = context_type(model, options)
    batch = batch_type(max(512, args.prompt), 1)
    prompt = random_tokens(args.prompt, model.vocab.n_tokens, 1)
    short = [random_tokens(16, model.vocab.n_tokens, 10 + s) for s in range(4)]
    result = {"prefill": _prefill(ctx, batch, prompt), "decode_1": _decode(ctx, batch, short[:1], args.tokens),
              "decode_4": _decode(ctx, batch, short, args.tokens)}
    ctx.close()
    return result


def numpy_only(args: argparse.Namespace) -> dict[str, Any]:
    model = numpy_engine.Model(model_path(args.model))
    rounds = [measure(model, numpy_engine.Context, numpy_engine.Batch, args) for _ in range(args.rounds)]
    return {"blas": blas_info(), "numpy": {k: median([r[k] for r in rounds]) for k in rounds[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=env_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--unset-openblas-env", action="store_true")
    parser.add_argument("--numpy-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads, user_api="blas")  # numpy's BLAS gets the threads llama.cpp gets
    if args.numpy_only:
        print(json.dumps(numpy_only(args)))
        return
    path = model_path(args.model)
    models = {"llama.cpp": (engine.Model(path), engine.Context, engine.Batch),
              "numpy": (numpy_engine.Model(path), numpy_engine.Context, numpy_engine.Batch)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for r in range(args.rounds):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            runs[name].append(measure(*models[name], args))
    report: dict[str, Any] = {"model": str(path), "threads": args.threads, "blas": blas_info(),
                              "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}}
    for name, rounds in runs.items():
        report[name] = {k: median([r[k] for r in rounds]) for k in rounds[0]}
    report["numpy / llama.cpp"] = {k: report["numpy"][k] / report["llama.cpp"][k] for k in report["numpy"]}
    if args.unset_openblas_env:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        child = subprocess.run([sys.executable, __file__, "--numpy-only", "--model", args.model, "--rounds",
                                str(args.rounds), "--threads", str(args.threads), "--prompt", str(args.prompt),
                                "--tokens", str(args.tokens)], env=env, capture_output=True, text=True, check=True)
        report["without OPENBLAS_CORETYPE/L2_SIZE"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))
    dump(args.json, report)


if __name__ == "__main__":
    main()
