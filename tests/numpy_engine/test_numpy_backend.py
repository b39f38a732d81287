"""The NumPy backend behind the unchanged runtime: load(backend="numpy"), continuous batching,
cancellation, the CLI's --backend, `llamarun version`, and llamarun without llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llamarun
from llamarun.errors import InvalidParameterError, UnsupportedFeatureError
from llamarun.runtime import GenerationRequest, SyncClient
from llamarun.types import FinishReason, SamplingParams

SRC = str(Path(llamarun.__file__).resolve().parent.parent)
GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def served(smollm2_path):
    with llamarun.load(smollm2_path, backend="numpy", n_ctx=256, n_slots=4, n_threads=1) as model:
        yield model


def test_load_runs_on_the_numpy_engine(served):
    assert type(served.runtime._loop.model).__module__.startswith("llamarun.numpy_engine")
    result = served.generate("The capital of France is", max_tokens=8, temperature=0)
    assert "Paris" in result.text and result.finish_reason == FinishReason.LENGTH


def _greedy_gaps(model, prompt_tokens, generated):
    """How far below the best logit each generated token was, recomputed for the sequence alone."""
    import numpy as np

    from llamarun.numpy_engine import Batch, Context
    from llamarun.types import ContextOptions

    tokens = list(prompt_tokens) + list(generated)
    with Context(model, ContextOptions(n_ctx=128, n_batch=128, n_seq_max=1, n_threads=1)) as ctx:
        batch = Batch(len(tokens))
        for i, token in enumerate(tokens):
            batch.add(token, i, 0, i >= len(prompt_tokens) - 1)
        ctx.decode(batch)
        rows = [ctx.logits(len(prompt_tokens) - 1 + k) for k in range(len(generated))]
    return [float(np.max(row) - row[token]) for row, token in zip(rows, generated, strict=True)]


def test_continuous_batching_gives_each_request_its_own_answer(served):
    """Four requests decoded together: every token each one got is its own greedy choice.

    (Their texts may differ from the same requests run one at a time, with llama.cpp too:
    a batch of four rows rounds differently from one, and SmolLM2 has near ties.)"""
    prompts = ["The capital of France is", "1, 2, 3, 4,", "def add(a, b):", "Water is made of"]
    client = SyncClient(served.runtime)
    steps = served.runtime.snapshot().steps
    streams = [client.stream(GenerationRequest(p, max_tokens=10, sampling=GREEDY)) for p in prompts]
    results = [s.wait() for s in streams]
    assert served.runtime.snapshot().steps - steps < 4 * 10  # decoded together, not one after another
    for prompt, result in zip(prompts, results, strict=True):
        gaps = served.runtime.call(lambda m, p=prompt, r=result: _greedy_gaps(m, m.tokenize(p), r.token_ids))
        assert max(gaps) < 0.05, (prompt, result.text, gaps)


def test_cancel_stops_a_running_request(served):
    client = SyncClient(served.runtime)
    stream = client.stream(GenerationRequest("Tell me a long story.", max_tokens=200, sampling=GREEDY, ignore_eos=True))
    first = next(iter(stream))
    assert first.text is not None
    stream.cancel()
    result = stream.wait()
    assert result.finish_reason == FinishReason.CANCELLED and len(result.token_ids) < 200
    assert served.generate("Hi", max_tokens=2, temperature=0).finish_reason in (FinishReason.LENGTH, FinishReason.STOP)


def test_fields_it_cannot_honour_are_refused(served):
    with pytest.raises(UnsupportedFeatureError):
        served.generate("x", max_tokens=2, grammar='root ::= "a"')


def test_unknown_backend_is_refused(tiny_model_path):
    with pytest.raises(InvalidParameterError, match="backend"):
        llamarun.load(tiny_model_path, backend="tpu")


def _run(args, env_extra=None, timeout=240):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_cli_run_with_backend_numpy(tiny_model_path):
    done = _run(["-m", "llamarun", "run", str(tiny_model_path), "--backend", "numpy", "--ctx", "64",
                 "-n", "4", "--temperature", "0", "the"])
    assert done.returncode == 0, done.stderr


def test_show_and_hw_state_the_numpy_backends_memory(tiny_model_path, tmp_path):
    """Every tensor dequantized to float32: what the NumPy backend holds, shown before anything loads."""
    from llamarun.numpy_engine import Model

    expected = Model(tiny_model_path).f32_bytes
    env = {"LLAMARUN_HOME": str(tmp_path), "COLUMNS": "200", "NO_COLOR": "1"}
    assert _run(["-m", "llamarun", "create", "tiny", "--from", str(tiny_model_path), "-q"], env).returncode == 0
    shown = _run(["-m", "llamarun", "show", "tiny", "--json"], env)
    assert json.loads(shown.stdout)["details"]["numpy_backend_bytes"] == expected
    assert "as float32 (--backend numpy)" in _run(["-m", "llamarun", "show", "tiny"], env).stdout
    planned = _run(["-m", "llamarun", "hw", "--model", "tiny", "--json"], env)
    assert json.loads(planned.stdout)["plan"]["numpy_backend_bytes"] == expected


_BLOCK_LLAMA_CPP = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "llama_cpp" or name.startswith("llama_cpp."):
                raise ImportError("llama_cpp is blocked for this test")
    sys.meta_path.insert(0, Block())
""")


def test_llamarun_works_without_llama_cpp(tiny_model_path):
    script = _BLOCK_LLAMA_CPP + textwrap.dedent(f"""
        import llamarun
        from llamarun.engine import backend_status
        status = backend_status()
        assert status["numpy"] is None and "blocked" in status["llama.cpp"], status
        with llamarun.load({str(tiny_model_path)!r}, backend="numpy", n_ctx=64, n_slots=2) as m:
            print("generated", len(m.generate("the", max_tokens=4, temperature=0).token_ids))
        try:
            llamarun.load({str(tiny_model_path)!r}, n_ctx=64)
        except llamarun.errors.ModelLoadError as exc:
            print("llama.cpp refused:", exc)
        from llamarun.cli.main import main
        sys.argv = ["llamarun", "version"]
        main()
    """)
    done = _run(["-c", script])
    assert done.returncode in (0, None), done.stderr
    assert "generated 4" in done.stdout
    assert "llama.cpp refused:" in done.stdout and "backend='numpy'" in done.stdout
    assert "numpy available" in done.stdout and "llama.cpp ImportError" in done.stdout
