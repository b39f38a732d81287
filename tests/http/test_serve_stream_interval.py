"""`llamarun serve --stream-interval N`: fewer, larger chunks on both APIs, the same text."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest

from serve_helpers import ROOT, Server, start_server

pytestmark = pytest.mark.timeout(300)

N = 12
EVERY = 4
MOST_CHUNKS = 1 + -(-(N - 1) // EVERY)  # the first token alone, then groups of EVERY


@pytest.fixture(scope="module")
def server(model_home: Path) -> Iterator[Server]:
    server = start_server(model_home, "--parallel", "2", "--ctx", "512", "--keep-alive", "-1",
                          "--stream-interval", str(EVERY))
    try:
        yield server
    finally:
        server.stop()


def test_openai_stream_in_groups_with_the_same_text(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    args = {"model": "tiny", "prompt": "hello", "max_tokens": N, "seed": 5, "extra_body": {"ignore_eos": True}}
    whole = client.completions.create(**args)
    parts = list(client.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    texts = [p.choices[0].text for p in parts if p.choices and p.choices[0].text]
    assert "".join(texts) == whole.choices[0].text
    assert 2 <= len(texts) <= MOST_CHUNKS
    assert parts[-1].usage.completion_tokens == N


def test_streamed_completion_logprobs_keep_their_text_offsets(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    parts = list(client.completions.create(model="tiny", prompt="hello", max_tokens=N, seed=5, logprobs=1,
                                           stream=True, extra_body={"ignore_eos": True}))
    tokens, offsets = [], []
    for p in parts:
        if p.choices and p.choices[0].logprobs:
            tokens += p.choices[0].logprobs.tokens
            offsets += p.choices[0].logprobs.text_offset
    assert len(tokens) == N
    assert offsets == [sum(len(t) for t in tokens[:i]) for i in range(N)]


def test_ollama_stream_in_groups_with_the_same_text(server: Server) -> None:
    client = ollama.Client(host=server.url, timeout=120)
    options = {"num_predict": N, "seed": 5, "temperature": 0.9, "ignore_eos": True}
    whole = client.generate(model="tiny", prompt="hello", raw=True, options=options)
    parts = list(client.generate(model="tiny", prompt="hello", raw=True, options=options, stream=True))
    texts = [p.response for p in parts if p.response]
    assert "".join(texts) == whole.response
    assert 2 <= len(texts) <= MOST_CHUNKS
    assert parts[-1].done and parts[-1].eval_count == N


def test_out_of_range_interval_is_refused_before_serving(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "llamarun", "serve", "--port", "0", "--stream-interval", "0"],
                          cwd=ROOT, env={"LLAMARUN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "stream_interval" in proc.stderr
