"""Sessions: the next turn of a long conversation restored from the KV tiers vs computed again.

1. TTFT of the next turn of a ~2,000-token conversation (SmolLM2, one slot, greedy) after another
   conversation took its slot: restored from the RAM tier, from the disk tier, and recomputed (tiers
   off); and, for reference, when it never left its slot.
2. Aggregate throughput of 16 conversations (a ~400-token system prompt each, N_TURNS turns of
   N_GEN tokens) taking turns on 4 slots, 8 client threads at a time, with and without the tiers:
   wall time, generated tokens/s, and the prompt tokens computed (the rest came from a cache).

    python benchmarks/bench_sessions.py [--model smollm2] [--threads 2] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
import time
from typing import Any

from common import dump, median, model_path

import llamarun

N_GEN = 16
N_TURNS = 3
FILLER = ("The history of the lighthouse keeper's island is long and full of storms, ships and letters "
          "that arrived months late. ")


def _long_session(model: Any, words: int, tag: str) -> Any:
    session = model.session(system=f"[{tag}] " + FILLER * words, temperature=0.0, max_tokens=N_GEN, ignore_eos=True)
    session.send("Summarise the story in one line.")
    return session


def ttft_case(path: str, threads: int, reps: int, case: str, tmp: str) -> dict[str, Any]:
    tiers = {"ram": {"session_ram": 1 << 30, "session_disk": 0},
             "disk": {"session_ram": 0, "session_disk": 1 << 30, "session_dir": tmp},
             "recomputed": {"session_ram": 0, "session_disk": 0},
             "kept in slot": {"session_ram": 0, "session_disk": 0}}[case]
    ttfts, history = [], 0
    with llamarun.load(path, n_ctx=2600, n_slots=1, n_threads=threads, **tiers) as model:
        for rep in range(reps):
            session = _long_session(model, 80, f"{case} {rep}")
            history = session.history_tokens
            if case != "kept in slot":
                model.session(temperature=0.0, max_tokens=1).send(f"Another conversation takes the slot ({rep}).")
            result = session.send("What happened next?")
            ttfts.append(result.timings.ttft_s)
            cached = result.cached_tokens
        snap = model.runtime.snapshot()
    return {"case": case, "history_tokens": history, "cached_tokens": cached, "ttft_s": median(ttfts),
            "ttft_all_s": ttfts, "restored": snap.session_restored, "saved_bytes": snap.session_saved_bytes}


def churn_case(path: str, threads: int, tiers: bool, tmp: str) -> dict[str, Any]:
    settings = {"session_ram": 1 << 30, "session_disk": 1 << 30, "session_dir": tmp} if tiers else {
        "session_ram": 0, "session_disk": 0}
    with llamarun.load(path, n_ctx=1024, n_slots=4, n_threads=threads, **settings) as model:
        sessions = [model.session(system=f"[conversation {i}] " + FILLER * 16, temperature=0.0, max_tokens=N_GEN,
                                  ignore_eos=True) for i in range(16)]
        start = time.perf_counter()
        generated = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for turn in range(N_TURNS):
                results = list(pool.map(lambda s: s.send(f"Turn {turn}: what next?"), sessions))
                generated += sum(len(r.token_ids) for r in results)
        wall = time.perf_counter() - start
        snap = model.runtime.snapshot()
    return {"tiers": tiers, "wall_s": wall, "generated_tokens_per_s": generated / wall,
            "prompt_tokens": snap.prompt_tokens, "prompt_tokens_computed": snap.prompt_tokens - snap.prefix_tokens_reused,
            "restored": snap.session_restored, "saved": snap.session_saved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    path = str(model_path(args.model))
    report: dict[str, Any] = {"model": args.model, "threads": args.threads, "ttft": [], "churn": []}
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("kept in slot", "ram", "disk", "recomputed"):
            row = ttft_case(path, args.threads, args.reps, case, tmp)
            report["ttft"].append(row)
            print(f"next turn of a {row['history_tokens']}-token conversation, {case:>12}: TTFT "
                  f"{row['ttft_s'] * 1000:8.1f} ms (cached {row['cached_tokens']}, restored {row['restored']})",
                  flush=True)
        by_case = {r["case"]: r["ttft_s"] for r in report["ttft"]}
        for tier in ("ram", "disk"):
            print(f"  restored from {tier}: {by_case['recomputed'] / by_case[tier]:.1f}x faster than recomputed")
        for tiers in (False, True):
            row = churn_case(path, args.threads, tiers, tmp)
            report["churn"].append(row)
            print(f"16 conversations on 4 slots, tiers {'on ' if tiers else 'off'}: {row['wall_s']:6.1f} s, "
                  f"{row['generated_tokens_per_s']:6.1f} generated tok/s, prompt tokens computed "
                  f"{row['prompt_tokens_computed']} of {row['prompt_tokens']} (restored {row['restored']})", flush=True)
    if args.json:
        dump(args.json, report)


if __name__ == "__main__":
    main()
