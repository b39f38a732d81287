"""Speculative decoding as a server setting (`serve --speculative ngram --draft-max 4`): every
request speculates unless it says otherwise, the drafts show in the answer and in /metrics, and
`--speculative draft` without a draft model is refused at start."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from serve_helpers import ROOT, Server, start_server

pytestmark = pytest.mark.smollm2

TEXT = ("The library opens at nine in the morning and closes at six in the evening. Visitors may borrow up to "
        "five books at a time for three weeks. Late returns cost ten cents a day.")
COPY = f"Repeat this text exactly, word for word:\n\n{TEXT}"  # SmolLM2 copies it: n-gram drafts are kept
GREEDY = {"temperature": 0, "num_predict": 48}


@pytest.fixture(scope="module")
def spec_server(model_home: Path) -> Iterator[Server]:
    server = start_server(model_home, "--parallel", "2", "--ctx", "1024", "--keep-alive", "-1",
                          "--speculative", "ngram", "--draft-max", "4")
    try:
        yield server
    finally:
        server.stop()


def test_serve_speculative_setting_applies_to_every_request(spec_server: Server) -> None:
    def generate(**options: object) -> dict:
        with spec_server.client() as http:  # the raw body: the ollama client's types drop draft_count
            reply = http.post("/api/generate", json={"model": "smollm2", "prompt": COPY, "stream": False,
                                                      "options": {**GREEDY, **options}})
        reply.raise_for_status()
        return reply.json()

    answer = generate()
    assert answer["draft_accepted_count"] > 0  # no speculative field in the request: the server's setting applied
    assert answer["draft_count"] <= 4 * answer["eval_count"]  # --draft-max 4: at most 4 drafts a step
    assert spec_server.metric("llamarun_speculative_drafted_tokens_total") >= answer["draft_count"]
    off = generate(speculative={"type": "off"})
    assert not off.get("draft_count")  # a request may still turn it off
    assert off["response"] == answer["response"]  # greedy: the same tokens either way
    plain = ollama.Client(host=spec_server.url, timeout=120).generate(model="smollm2", prompt=COPY, options=GREEDY)
    assert plain.response == answer["response"]  # and the official client sees the same answer


def test_serve_refuses_draft_speculation_without_a_draft_model(model_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "llamarun", "serve", "--port", "0", "--speculative", "draft"],
                          cwd=ROOT, env={"LLAMARUN_HOME": str(model_home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--draft-model" in proc.stderr and "Traceback" not in proc.stderr
