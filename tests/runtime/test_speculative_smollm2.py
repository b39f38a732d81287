"""Speculative decoding with SmolLM2: greedy identity, grammars, cancellation and deadlines."""

from __future__ import annotations

import json
import time

import pytest

from llamarun.runtime import GenerationRequest, Runtime, RuntimeConfig, SyncClient
from llamarun.runtime.speculative import Speculation
from llamarun.types import FinishReason, SamplingParams
from spec_helpers import CheapDrafts

GREEDY = SamplingParams(temperature=0)
PERSON = r'''root ::= "{\"name\": \"" [A-Za-z ]{1,24} "\", \"langs\": [" lang (", " lang){0,3} "], \"age\": " [0-9]{1,3} "}"
lang ::= "\"" [a-z]{1,10} "\""'''
NGRAM = Speculation(type="ngram", n_max=8)
OFF = Speculation(type="off")
SNIPPET = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Write a haiku about the sea.",
    "List the days of the week.",
    "Count from one to twenty in words.",
    "Explain what a CPU does in two sentences.",
    f"Repeat this code exactly:\n```python\n{SNIPPET}```",
    "Repeat after me: the quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.",
    "Write the alphabet in capital letters separated by commas.",
    "What is 12 times 12?",
    "Give me a short recipe for pancakes.",
    "Translate 'good morning' into French, Spanish and German.",
    "Write a Python function that reverses a string.",
    "Name five planets of the solar system.",
    "Rewrite in uppercase: hello world, this is a test of copying text.",
    "What are the colours of the rainbow?",
    "Write a limerick about a cat.",
    "Summarise: The cat sat on the mat. The dog sat on the log. The cat and the dog were friends.",
    "List the first ten prime numbers.",
    "Write an HTML page with a title and one paragraph.",
]


def chat(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def request(prompt: str, speculative: Speculation, **kw) -> GenerationRequest:
    kw.setdefault("max_tokens", 64)
    kw.setdefault("sampling", GREEDY)
    return GenerationRequest(prompt=chat(prompt), add_special=False, speculative=speculative, **kw)


@pytest.fixture(scope="module")
def runtime(smollm2_path):
    rt = Runtime(smollm2_path, RuntimeConfig(n_ctx=1024, n_slots=4, n_threads=2, max_queue=32))
    yield rt
    rt.close()


def test_greedy_output_is_token_identical_alone(runtime):
    client = SyncClient(runtime)
    drafted = 0
    for prompt in PROMPTS:
        client.generate(request(prompt, OFF, max_tokens=1))  # both runs below start from the cached prompt
        plain = client.generate(request(prompt, OFF))
        spec = client.generate(request(prompt, NGRAM))
        assert spec.token_ids == plain.token_ids, prompt
        drafted += spec.timings.drafted_tokens
    assert drafted > 0 and runtime.snapshot().spec_accepted > 0


@pytest.fixture
def cheap(runtime):
    """Drafts made whenever they are likely kept: whether they pay depends on this machine's decode
    costs (test_speculative.py tests that choice); the tests using this are about what speculation
    must keep (identical tokens, grammars, stops, cancellation, deadlines), so drafts must be made."""
    measured = runtime.call_engine(lambda loop: loop.speculator.cost)
    runtime.call_engine(lambda loop: setattr(loop.speculator, "cost", CheapDrafts()))
    yield runtime
    runtime.call_engine(lambda loop: setattr(loop.speculator, "cost", measured))


def test_greedy_output_is_token_identical_with_concurrent_requests(cheap):
    """Drafts verified in the same decode as other requests' tokens change no token."""
    runtime = cheap
    client = SyncClient(runtime)
    for prompt in PROMPTS:
        client.generate(request(prompt, OFF, max_tokens=1))
    plain = [s.wait() for s in [client.stream(request(p, OFF)) for p in PROMPTS]]
    for prompt in PROMPTS:
        client.generate(request(prompt, OFF, max_tokens=1))
    spec = [s.wait() for s in [client.stream(request(p, NGRAM)) for p in PROMPTS]]
    same = sum(a.token_ids == b.token_ids for a, b in zip(plain, spec))
    print(f"\nconcurrent greedy: {same}/{len(PROMPTS)} token-identical")
    assert same == len(PROMPTS)
    assert sum(r.timings.accepted_tokens for r in spec) > 0


def test_grammar_constrained_output_parses(cheap):
    runtime = cheap
    client = SyncClient(runtime)
    prompt = 'Repeat this JSON exactly: {"name": "Ada", "langs": ["python", "c"], "age": 36}'
    plain = client.generate(request(prompt, OFF, max_tokens=120, sampling=SamplingParams(temperature=0, grammar=PERSON)))
    spec = client.generate(request(prompt, NGRAM, max_tokens=120, sampling=SamplingParams(temperature=0, grammar=PERSON)))
    assert spec.finish_reason == FinishReason.STOP
    assert set(json.loads(spec.text)) == {"name", "langs", "age"}
    assert spec.token_ids == plain.token_ids
    assert spec.timings.drafted_tokens > 0


def test_stop_strings_and_logprobs_keep_working(cheap):
    runtime = cheap
    client = SyncClient(runtime)
    prompt = PROMPTS[7]
    plain = client.generate(request(prompt, OFF, stop=("lazy",), logprobs=2))
    spec = client.generate(request(prompt, NGRAM, stop=("lazy",), logprobs=2))
    assert spec.finish_reason == plain.finish_reason == FinishReason.STOP
    assert spec.text == plain.text and "lazy" not in spec.text
    assert spec.timings.drafted_tokens > 0


def test_cancel_mid_speculation(cheap):
    runtime = cheap
    client = SyncClient(runtime)
    stream = client.stream(request(PROMPTS[4], NGRAM, max_tokens=600,
                                   sampling=SamplingParams(temperature=0, repeat_penalty=1.0), ignore_eos=True))
    got = 0
    for chunk in stream:
        got += len(chunk.token_ids)
        if got >= 40:
            stream.cancel()
            break
    result = stream.wait()
    assert result.finish_reason == FinishReason.CANCELLED
    assert result.timings.drafted_tokens > 0
    again = client.generate(request(PROMPTS[0], NGRAM))
    assert again.token_ids == client.generate(request(PROMPTS[0], OFF)).token_ids


def test_deadline_mid_speculation(cheap):
    runtime = cheap
    client = SyncClient(runtime)
    started = time.monotonic()
    result = client.generate(request(PROMPTS[4], NGRAM, max_tokens=2000, timeout=1.5, ignore_eos=True,
                                     sampling=SamplingParams(temperature=0, repeat_penalty=1.0)))
    assert result.finish_reason == FinishReason.DEADLINE
    assert result.timings.drafted_tokens > 0 and result.token_ids
    assert time.monotonic() - started < 30
