"""Speculative decoding: single-stream tokens/s with and without it, on copying and plain chat.

llamarun (in-process Runtime) without speculation and with n-gram speculation, next to
llama.cpp's llama-server without speculation and with its n-gram ``--spec-type`` modes (when
benchmarks/build_llama_tools.sh has built it), in interleaved rounds; then 8 concurrent clients
on llamarun with and without it.  Decode tokens/s counts from the first token to the last
(llamarun's Timings.generate_s, llama-server's timings.predicted_per_second), greedy, so every
setup generates the same kind of text.  Ratios are against llamarun without speculation,
measured in the same rounds.

    PYTHONPATH=src python benchmarks/bench_spec.py [--model smollm2] [--rounds 2] [--tokens 96] [--json out.json]

Every round asks the same tasks with other names, numbers and subjects (``prompts_for``): llama-server's
ngram-mod keeps its n-gram table across requests, and the same greedy prompts again would let it
draft its own earlier answers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dump, env_threads, median, model_path  # noqa: E402

from llamarun.runtime import GenerationRequest, Runtime, RuntimeConfig, SyncClient  # noqa: E402
from llamarun.runtime.speculative import Speculation  # noqa: E402
from llamarun.types import SamplingParams  # noqa: E402

LLAMA_SERVER = Path.home() / ".cache/llamarun/bench/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-server"
SERVER_SPEC_TYPES = ("none", "ngram-simple", "ngram-map-k", "ngram-mod")
CODE = '''def parse_config(path):
    """Read a key=value file into a dict."""
    config = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, value = line.split("=", 1)
            config[key.strip()] = value.strip()
    return config
'''
TEXT = ("The library opens at nine in the morning and closes at six in the evening. Visitors may borrow up to "
        "five books at a time for three weeks. Late returns cost ten cents a day. The reading room on the second "
        "floor is quiet, and the children's corner on the ground floor has story time every Saturday at ten.")
COPYING = [
    # (SmolLM2-135M explains rather than copies when asked to rename the function: not a copying prompt)
    "Add a comment line '# skip blank lines and comments' above the if statement in this code and show all of "
    "it:\n```python\n{code}```",
    "Repeat this text exactly, word for word:\n\n{text}",
    "Add a docstring line 'Lines starting with # are skipped.' to this code and show all of it:\n```python\n{code}```",
]
CHAT = ["Write a short story about a {who}.", "Explain how a {what} works.", "Give me tips for learning to {skill}."]
# Each round asks with other words: llama-server's ngram-mod keeps its n-gram table across requests, so
# the same prompts again would be drafted from its own earlier answers (a cache, not speculation).
ROUND_WORDS = [
    {"config": "config", "handle": "handle", "who": "lighthouse keeper", "what": "bicycle", "skill": "cook",
     "nine": "nine", "six": "six", "five": "five", "three": "three", "ten": "ten", "library": "library"},
    {"config": "settings", "handle": "stream", "who": "baker in Paris", "what": "refrigerator", "skill": "swim",
     "nine": "eight", "six": "seven", "five": "four", "three": "two", "ten": "twelve", "library": "museum"},
    {"config": "options", "handle": "source", "who": "young astronaut", "what": "compass", "skill": "paint",
     "nine": "ten", "six": "five", "five": "six", "three": "four", "ten": "eleven", "library": "gallery"},
    {"config": "values", "handle": "infile", "who": "clockmaker", "what": "telescope", "skill": "draw",
     "nine": "seven", "six": "eight", "five": "three", "three": "five", "ten": "nine", "library": "town hall"},
]


def prompts_for(templates: list[str], rnd: int) -> list[str]:
    """The prompts of round ``rnd``: the same tasks on other names, numbers and subjects."""
    words = ROUND_WORDS[rnd % len(ROUND_WORDS)]
    code = CODE.replace("config", words["config"]).replace("handle", words["handle"])
    text = TEXT
    for word in ("library", "nine", "six", "five", "three", "ten"):
        text = text.replace(f" {word} ", f" {{{word}}} ")
    text = text.format(**words)
    return [t.format(code=code, text=text, **words) for t in templates]


def chat(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def llamarun_rate(client: SyncClient, prompt: str, kind: str, tokens: int) -> tuple[float, int, int]:
    result = client.generate(GenerationRequest(
        prompt=chat(prompt), max_tokens=tokens, sampling=SamplingParams(temperature=0), add_special=False,
        speculative=Speculation(type=kind)))
    t = result.timings
    return (len(result.token_ids) - 1) / t.generate_s if t.generate_s else 0.0, t.drafted_tokens, t.accepted_tokens


def start_server(path: Path, spec: str, threads: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(LLAMA_SERVER), "-m", str(path), "-np", "1", "-t", str(threads), "-c", "2048", "--host", "127.0.0.1",
           "--port", str(port), "--no-webui"]
    if spec != "none":
        cmd += ["--spec-type", spec]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"llama-server --spec-type {spec} did not start")


def server_rate(url: str, prompt: str, tokens: int) -> tuple[float, int, int]:
    body = json.dumps({"prompt": chat(prompt), "n_predict": tokens, "temperature": 0, "cache_prompt": True}).encode()
    req = urllib.request.Request(url + "/completion", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.loads(r.read())
    t = out.get("timings", {})
    return float(t.get("predicted_per_second", 0.0)), int(t.get("draft_n", 0)), int(t.get("draft_n_accepted", 0))


def single_stream(args: argparse.Namespace, path: Path, client: SyncClient) -> dict:
    servers = {}
    if LLAMA_SERVER.exists() and not args.no_server:
        for spec in SERVER_SPEC_TYPES:
            servers[f"llama-server {spec}"] = start_server(path, spec, args.threads)
    rates: dict[str, dict[str, list[float]]] = {}
    drafts: dict[str, list[int]] = {}
    try:
        for rnd in range(args.rounds):
            for workload, templates in (("copying", COPYING), ("chat", CHAT)):
                for prompt in prompts_for(templates, rnd):
                    setups = [("llamarun off", lambda p=prompt: llamarun_rate(client, p, "off", args.tokens)),
                              ("llamarun ngram", lambda p=prompt: llamarun_rate(client, p, "ngram", args.tokens))]
                    setups += [(name, lambda p=prompt, u=url: server_rate(u, p, args.tokens))
                               for name, (_, url) in servers.items()]
                    order = setups if rnd % 2 == 0 else setups[::-1]
                    for name, run in order:
                        rate, drafted, accepted = run()
                        rates.setdefault(workload, {}).setdefault(name, []).append(rate)
                        d = drafts.setdefault(f"{workload} {name}", [0, 0])
                        d[0] += drafted
                        d[1] += accepted
            print(f"round {rnd + 1}/{args.rounds} done", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    return {"rates": rates, "drafts": drafts}


def concurrent(args: argparse.Namespace, client: SyncClient) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for rnd in range(args.concurrent_rounds):
        prompts = [*prompts_for(CHAT, rnd), *prompts_for(COPYING, rnd), "Describe the water cycle.",
                   "Write a poem about autumn."][:8]
        for kind in (("off", "ngram") if rnd % 2 == 0 else ("ngram", "off")):
            started = time.perf_counter()
            streams = [client.stream(GenerationRequest(
                prompt=chat(p), max_tokens=args.tokens, sampling=SamplingParams(temperature=0), add_special=False,
                ignore_eos=True, speculative=Speculation(type=kind))) for p in prompts]
            total = sum(len(s.wait().token_ids) for s in streams)
            out.setdefault(kind, []).append(total / (time.perf_counter() - started))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--concurrent-rounds", type=int, default=6, help="rounds of the 8-client part")
    parser.add_argument("--threads", type=int, default=env_threads())
    parser.add_argument("--no-server", action="store_true", help="skip llama-server")
    parser.add_argument("--json")
    args = parser.parse_args()
    path = model_path(args.model)
    # configured as llama-server is (-np 1 -c 2048) for the single stream: with 8 slots the earlier
    # prompts stay cached in the other slots and every decode's attention spans their cells too
    with Runtime(path, RuntimeConfig(n_ctx=2048, n_slots=1, n_threads=args.threads, max_queue=32)) as rt:
        single = single_stream(args, path, SyncClient(rt))
    with Runtime(path, RuntimeConfig(n_ctx=2048, n_slots=8, n_threads=args.threads, max_queue=32)) as rt:
        many = concurrent(args, SyncClient(rt))
    report(single, many)
    dump(args.json, {"single": single, "concurrent_8": many})


def report(single: dict, many: dict[str, list[float]]) -> None:
    for workload, by_setup in single["rates"].items():
        base = by_setup["llamarun off"]
        print(f"\n{workload}: single-stream decode tok/s (median); ratio to llamarun off: of the medians, "
              f"and the median of the ratios of each prompt's two runs in the same round (paired)")
        for name, values in by_setup.items():
            drafted, accepted = single["drafts"][f"{workload} {name}"]
            acc = f"  accepted {accepted}/{drafted}" if drafted else ""
            print(f"  {name:28s} {median(values):7.1f}  {median(values) / median(base):5.2f}x  "
                  f"paired {paired(values, base):5.2f}x{acc}")
    print("\n8 clients: total tok/s (median), ratio to off (of the medians; paired by round)")
    for kind, values in many.items():
        print(f"  llamarun {kind:8s} {median(values):7.1f}  {median(values) / median(many['off']):5.2f}x  "
              f"paired {paired(values, many['off']):5.2f}x")


def paired(values: list[float], base: list[float]) -> float:
    """The median of ``values[i] / base[i]``: each run against the baseline run next to it."""
    return median([v / b for v, b in zip(values, base, strict=True) if b])


if __name__ == "__main__":
    main()
