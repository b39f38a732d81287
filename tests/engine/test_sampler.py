"""Sampler chains built from SamplingParams with llama.cpp's native samplers."""

from __future__ import annotations

import pytest

from llamarun.engine import Batch, Context, Model, SamplerChain
from llamarun.errors import GrammarError, InvalidParameterError
from llamarun.types import ContextOptions, SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=512, n_threads=2)) as ctx:
        yield model, ctx


def sample_n(engine, params: SamplingParams, n: int = 8, prompt=(10, 20, 30)) -> list[int]:
    model, ctx = engine
    ctx.seq_rm(-1)
    batch = Batch(64)
    index = batch.add_tokens(list(prompt), 0, 0)
    ctx.decode(batch)
    out = []
    with SamplerChain(model, params) as chain:
        pos = len(prompt)
        for _ in range(n):
            token = chain.sample(ctx, index)
            out.append(token)
            batch.clear()
            index = batch.add(token, pos, 0, True)
            pos += 1
            ctx.decode(batch)
    batch.close()
    return out


def test_greedy_is_deterministic(engine):
    assert sample_n(engine, SamplingParams(temperature=0)) == sample_n(engine, SamplingParams(temperature=0))


def test_logit_bias_forces_a_token(engine):
    tokens = sample_n(engine, SamplingParams(temperature=0, logit_bias={100: 1000.0}))
    assert tokens == [100] * 8


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, typical_p=0.95, seed=1),
    SamplingParams(temperature=0.7, repeat_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.5, seed=2),
    SamplingParams(temperature=0.7, mirostat=1, seed=3),
    SamplingParams(temperature=0.7, mirostat=2, seed=4),
])
def test_sampler_variants_produce_valid_tokens_and_seed_reproduces(engine, params):
    model, _ = engine
    a = sample_n(engine, params)
    assert all(0 <= t < model.vocab.n_tokens for t in a)
    assert a == sample_n(engine, params)


def test_grammar_constrains_output(engine):
    model, _ = engine
    tokens = sample_n(engine, SamplingParams(temperature=0, grammar='root ::= "yes" | "no"'), n=3)
    text = model.detokenize([t for t in tokens if not model.vocab.is_eog(t)])
    assert text in ("yes", "no")


def test_invalid_grammar_is_typed(engine):
    model, _ = engine
    with pytest.raises(GrammarError):
        SamplerChain(model, SamplingParams(grammar="root ::= ("))


def test_repeat_penalty_penalises_repeats(engine):
    plain = sample_n(engine, SamplingParams(temperature=0), n=24)
    penalised = sample_n(engine, SamplingParams(temperature=0, repeat_penalty=5.0, repeat_last_n=64), n=24)
    assert len(set(penalised)) >= len(set(plain))


@pytest.mark.parametrize("bad", [
    {"temperature": -1}, {"top_p": 1.5}, {"top_k": -3}, {"temperature": float("nan")},
    {"logit_bias": {-1: 1.0}}, {"mirostat": 3}, {"repeat_last_n": -5},
])
def test_absurd_parameters_are_rejected(bad):
    with pytest.raises(InvalidParameterError):
        SamplingParams(**bad)


def test_logit_bias_token_outside_vocabulary(engine):
    model, _ = engine
    with pytest.raises(InvalidParameterError):
        SamplerChain(model, SamplingParams(logit_bias={10**9: 1.0}))
