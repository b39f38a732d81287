"""Sampling defaults: the model's GGUF recommendations (general.sampling.*), else Ollama's with a
repeat penalty; an explicit value always wins.  Applied by the library and both HTTP APIs."""

from __future__ import annotations

from pathlib import Path

import llamarun
from llamarun.http.openai.fields import body_request as openai_request
from llamarun.http.openai.schemas import CompletionRequest
from llamarun.serving import Options
from llamarun.serving import options_request as ollama_request
from tinymodel import write_tiny_gguf

DECLARED = {"temp": 0.0, "top_k": 1, "top_p": 0.5, "penalty_repeat": 1.3, "penalty_last_n": 32}


def _texts(model: llamarun.LoadedModel, **options: object) -> set[str]:
    return {model.generate("x", max_tokens=12, ignore_eos=True, seed=s, **options).text for s in range(4)}


def test_the_models_declared_sampling_is_the_default(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "declared.gguf", sampling=DECLARED)
    with llamarun.load(path, n_ctx=256, n_slots=1, n_threads=2) as model:
        assert model.sampling_defaults == {"temperature": 0.0, "top_k": 1, "top_p": 0.5, "repeat_penalty": 1.3,
                                           "repeat_last_n": 32}
        assert len(_texts(model)) == 1  # greedy as declared: the seed changes nothing
        assert len(_texts(model, temperature=1.5, top_k=0, top_p=1.0)) > 1  # explicit values win


def test_without_declared_values_ollamas_defaults_with_a_repeat_penalty(tiny_model_path: Path) -> None:
    with llamarun.load(tiny_model_path, n_ctx=256, n_slots=1, n_threads=2) as model:
        assert model.sampling_defaults == {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1,
                                           "repeat_last_n": 64}
        assert len(_texts(model)) > 1  # not greedy


def test_http_requests_apply_the_same_defaults() -> None:
    meta = {f"general.sampling.{k}": str(v) for k, v in DECLARED.items()}
    s = ollama_request("x", None, grammar=None, timeout=None, metadata=meta).sampling
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty, s.repeat_last_n) == (0.0, 1, 0.5, 1.3, 32)
    s = ollama_request("x", Options(temperature=0.7), grammar=None, timeout=None, metadata={}).sampling
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty, s.repeat_last_n) == (0.7, 40, 0.9, 1.1, 64)
    body = CompletionRequest(model="m", prompt="x")
    s = openai_request(body, "x", max_tokens=4, grammar=None, timeout=None, metadata=meta).sampling
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty, s.repeat_last_n) == (0.0, 1, 0.5, 1.3, 32)
    s = openai_request(body, "x", max_tokens=4, grammar=None, timeout=None, metadata={}).sampling
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty) == (1.0, 0, 1.0, 1.0)  # OpenAI's spec
    body = CompletionRequest(model="m", prompt="x", temperature=0.2, top_k=5)
    s = openai_request(body, "x", max_tokens=4, grammar=None, timeout=None, metadata=meta).sampling
    assert (s.temperature, s.top_k) == (0.2, 5)
