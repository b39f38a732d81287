"""Runtime behaviour with SmolLM2: concurrency, prefix reuse, cancelling a long prefill."""

from __future__ import annotations

import time

import pytest

from llamarun.runtime import GenerationRequest, Runtime, RuntimeConfig, SyncClient
from llamarun.types import FinishReason, SamplingParams

GREEDY = SamplingParams(temperature=0)
QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "Name a primary colour.",
    "What is 2 + 2?",
    "Say hello in Spanish.",
    "What animal says moo?",
    "Name a planet in our solar system.",
    "What is the opposite of hot?",
    "Which season comes after winter?",
]


def chat(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def runtime(smollm2_path):
    rt = Runtime(smollm2_path, RuntimeConfig(n_ctx=2048, n_slots=8, n_threads=2, max_queue=16))
    yield rt
    rt.close()


def test_eight_concurrent_requests_complete(runtime, record_property):
    client = SyncClient(runtime)
    specs = [GenerationRequest(prompt=chat(q), max_tokens=40, sampling=GREEDY, add_special=False) for q in QUESTIONS]
    alone = [client.generate(s) for s in specs]
    streams = [client.stream(s) for s in specs]
    together = [s.wait() for s in streams]
    for a, t in zip(alone, together):
        assert t.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
        assert t.text.strip(), "every request produces an answer"
    identical = sum(a.token_ids == t.token_ids for a, t in zip(alone, together))
    record_property("token_identical_alone_vs_batched", f"{identical}/8")
    print(f"\nalone vs batched: {identical}/8 token-identical")
    assert "Paris" in together[0].text


def test_prefix_reuse_computes_only_new_tokens(runtime):
    client = SyncClient(runtime)
    prefix = " ".join(f"fact {i}: the sky is blue." for i in range(70))
    first = client.generate(GenerationRequest(prompt=prefix + " Question one?", max_tokens=4, sampling=GREEDY))
    assert first.prompt_tokens > 500
    second = client.generate(GenerationRequest(prompt=prefix + " Question two?", max_tokens=4, sampling=GREEDY))
    assert second.cached_tokens >= 500
    assert second.prompt_tokens - second.cached_tokens < 10


def test_prefix_shared_with_a_running_request(runtime):
    client = SyncClient(runtime)
    prefix = " ".join(f"rule {i}: be kind." for i in range(60))
    busy = client.stream(GenerationRequest(prompt=prefix + " Go.", max_tokens=200, sampling=GREEDY, ignore_eos=True))
    next(iter(busy))  # the prefix is now in the busy slot's cache
    other = client.generate(GenerationRequest(prompt=prefix + " Stop.", max_tokens=4, sampling=GREEDY))
    busy.cancel()
    busy.wait()
    assert other.cached_tokens >= 400


def test_cancel_during_long_prefill_aborts_the_decode(smollm2_path):
    config = RuntimeConfig(n_ctx=4096, n_slots=2, n_threads=2, n_batch=2048, n_ubatch=512)
    with Runtime(smollm2_path, config) as rt:
        client = SyncClient(rt)
        long_prompt = " ".join(f"line {i} of a very long document." for i in range(330))
        stream = client.stream(GenerationRequest(prompt=long_prompt, max_tokens=8, sampling=GREEDY))
        deadline = time.monotonic() + 30
        while not rt._loop.inflight and time.monotonic() < deadline:  # wait until the prefill decode runs
            time.sleep(0.005)
        stream.cancel()
        result = stream.wait()
        assert result.finish_reason == FinishReason.CANCELLED
        assert result.token_ids == ()
        assert rt.snapshot().aborted_decodes >= 1
        after = client.generate(GenerationRequest(prompt="Hello", max_tokens=4, sampling=GREEDY, ignore_eos=True))
        assert len(after.token_ids) == 4


def test_request_moved_to_close_a_slot_gap_completes(runtime):
    client = SyncClient(runtime)
    long_a, short, long_c = (GenerationRequest(prompt=chat(q), max_tokens=n, sampling=GREEDY, add_special=False,
                                               ignore_eos=True) for q, n in ((QUESTIONS[0], 48), (QUESTIONS[1], 8),
                                                                             (QUESTIONS[2], 48)))
    alone = client.generate(long_c)
    moves = runtime.snapshot().slot_moves
    streams = []
    for spec in (long_a, short, long_c):  # slots 0, 1, 2; then 2 moves down to 1 when "short" ends
        streams.append(client.stream(spec))
        if spec is not long_c:
            next(iter(streams[-1]))  # running (admitted alone, so in this order) before the next comes
    results = [s.wait() for s in streams]
    assert runtime.snapshot().slot_moves > moves
    assert all(len(r.token_ids) == r_n for r, r_n in zip(results, (48, 8, 48)))
    assert results[2].text.strip()
    print(f"\nmoved request token-identical to alone: {results[2].token_ids == alone.token_ids}")
