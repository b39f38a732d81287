"""Sessions: the next turn of a long conversation restored from the KV tiers vs computed again.

1. TTFT of the next turn of a ~2,000-token conversation (SmolLM2, one slot, greedy) after another
   conversation took its slot: restored from the RAM tier, from the disk tier, and recomputed (tiers
   off); and, for reference, when it never left its slot.  The four cases each have a model of
   their own, loaded side by side, and take turns rep by rep, so a change in the machine's load
   falls on all of them alike.
2. Aggregate throughput of 16 conversations (a ~400-token system prompt each, N_TURNS turns of
   N_GEN tokens) taking turns on 4 slots, 8 client threads at a time, with and without the tiers:
   wall time, generated tokens/s, and the prompt tokens computed (the rest came from a cache).

    python benchmarks/bench_sessions.py [--model smollm2] [--threads 2] [--reps 3] [--only ttft|churn]
                                        [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
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


CASES = ("kept in slot", "ram", "disk", "recomputed")


def _tiers(case: str, tmp: str) -> dict[str, Any]:
    return {"ram": {"session_ram": 1 << 30, "session_disk": 0},
            "disk": {"session_ram": 0, "session_disk": 1 << 30, "session_dir": tmp},
            "recomputed": {"session_ram": 0, "session_disk": 0},
            "kept in slot": {"session_ram": 0, "session_disk": 0}}[case]


def ttft_turn(model: Any, case: str, rep: int) -> dict[str, Any]:
    """One conversation of ~2,000 tokens, another taking its slot (but when it is kept), its next turn."""
    session = _long_session(model, 80, f"{case} {rep}")
    history = session.history_tokens  # the conversation before the turn timed
    if case != "kept in slot":
        model.session(temperature=0.0, max_tokens=1).send(f"Another conversation takes the slot ({rep}).")
    result = session.send("What happened next?")
    return {"history_tokens": history, "cached_tokens": result.cached_tokens, "ttft_s": result.timings.ttft_s}


def ttft_cases(path: str, threads: int, reps: int, tmp: str) -> list[dict[str, Any]]:
    """The four cases, interleaved: rep 1 of each, then rep 2 of each, ..."""
    rows: dict[str, dict[str, Any]] = {c: {"case": c, "ttft_all_s": []} for c in CASES}
    with contextlib.ExitStack() as stack:
        models = {c: stack.enter_context(llamarun.load(path, n_ctx=2600, n_slots=1, n_threads=threads,
                                                       **_tiers(c, tmp))) for c in CASES}
        for rep in range(reps):
            for case in (CASES if rep % 2 == 0 else CASES[::-1]):
                turn = ttft_turn(models[case], case, rep)
                row = rows[case]
                row["ttft_all_s"].append(turn["ttft_s"])
                row.update(history_tokens=turn["history_tokens"], cached_tokens=turn["cached_tokens"])
                print(f"  rep {rep + 1}: {case:>12}: TTFT {turn['ttft_s'] * 1000:8.1f} ms "
                      f"(cached {turn['cached_tokens']} of {turn['history_tokens']})", flush=True)
        for case, model in models.items():
            snap = model.runtime.snapshot()
            rows[case].update(ttft_s=median(rows[case]["ttft_all_s"]), restored=snap.session_restored,
                              saved_bytes=snap.session_saved_bytes)
    return [rows[c] for c in CASES]


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
    parser.add_argument("--only", choices=("ttft", "churn"), help="run one part (each takes minutes on 2 cores)")
    parser.add_argument("--json")
    args = parser.parse_args()
    path = str(model_path(args.model))
    report: dict[str, Any] = {"model": args.model, "threads": args.threads, "ttft": [], "churn": []}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "ttft"):
            report["ttft"] = ttft_cases(path, args.threads, args.reps, tmp)
            for row in report["ttft"]:
                print(f"next turn of a {row['history_tokens']}-token conversation, {row['case']:>12}: TTFT "
                      f"{row['ttft_s'] * 1000:8.1f} ms median of {len(row['ttft_all_s'])} (cached "
                      f"{row['cached_tokens']}, restored {row['restored']})", flush=True)
            by_case = {r["case"]: r["ttft_s"] for r in report["ttft"]}
            for tier in ("ram", "disk"):
                print(f"  restored from {tier}: {by_case['recomputed'] / by_case[tier]:.1f}x faster than recomputed")
        if args.only in (None, "churn"):
            for tiers in (False, True):
                row = churn_case(path, args.threads, tiers, tmp)
                report["churn"].append(row)
                print(f"16 conversations on 4 slots, tiers {'on ' if tiers else 'off'}: {row['wall_s']:6.1f} s, "
                      f"{row['generated_tokens_per_s']:6.1f} generated tok/s, prompt tokens computed "
                      f"{row['prompt_tokens_computed']} of {row['prompt_tokens']} (restored {row['restored']})",
                      flush=True)
    if args.json:
        dump(args.json, report)


if __name__ == "__main__":
    main()
