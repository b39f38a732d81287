"""The NumPy sampler chain: SamplingParams semantics (greedy, bias, penalties, top-k/p, min-p, seed)."""

from __future__ import annotations

import numpy as np
import pytest

from llamarun import numpy_engine as ne
from llamarun.errors import UnsupportedFeatureError
from llamarun.types import SamplingParams


@pytest.fixture(scope="module")
def tiny(variant):
    return ne.Model(variant())


def _row(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 3


def test_greedy_is_argmax_and_bias_moves_it(tiny):
    row = _row(tiny.vocab.n_tokens)
    assert ne.SamplerChain(tiny, SamplingParams(temperature=0)).pick(row) == int(np.argmax(row))
    second = int(np.argsort(row)[-2])
    biased = ne.SamplerChain(tiny, SamplingParams(temperature=0, logit_bias={second: 100.0}))
    assert biased.pick(row) == second


def test_repeat_penalty_applies_to_accepted_tokens(tiny):
    row = _row(tiny.vocab.n_tokens)
    best = int(np.argmax(row))
    chain = ne.SamplerChain(tiny, SamplingParams(temperature=0, repeat_penalty=50.0, repeat_last_n=8))
    assert chain.pick(row) == best
    chain.accept(best)
    assert chain.pick(row) != best
    chain.reset()
    assert chain.pick(row) == best


@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0, top_k=1),
                                    SamplingParams(temperature=1.0, top_k=0, top_p=1e-6),
                                    SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=1.0)])
def test_cuts_that_leave_one_token(tiny, params):
    row = _row(tiny.vocab.n_tokens, 3)
    chain = ne.SamplerChain(tiny, params)
    assert {chain.pick(row) for _ in range(20)} == {int(np.argmax(row))}


def test_seeded_draws_repeat_and_follow_the_distribution(tiny):
    row = _row(tiny.vocab.n_tokens, 5) / 2
    params = SamplingParams(temperature=0.7, top_k=0, top_p=1.0, seed=1234)
    first = [ne.SamplerChain(tiny, params).pick(row) for _ in range(1)]
    a, b = ne.SamplerChain(tiny, params), ne.SamplerChain(tiny, params)
    draws = [a.pick(row) for _ in range(4000)]
    assert draws == [b.pick(row) for _ in range(4000)] and draws[0] == first[0]
    other = ne.SamplerChain(tiny, SamplingParams(temperature=0.7, top_k=0, top_p=1.0, seed=99))
    assert [other.pick(row) for _ in range(50)] != draws[:50]
    expected = np.exp((row - row.max()) / 0.7)
    expected /= expected.sum()
    seen = np.bincount(draws, minlength=len(row)) / len(draws)
    top = np.argsort(expected)[-5:]
    np.testing.assert_allclose(seen[top], expected[top], atol=0.03)


def test_top_k_and_top_p_keep_only_the_head(tiny):
    row = _row(tiny.vocab.n_tokens, 8)
    head = set(np.argsort(row)[-3:].tolist())
    chain = ne.SamplerChain(tiny, SamplingParams(temperature=5.0, top_k=3, seed=1))
    assert {chain.pick(row) for _ in range(300)} <= head
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    nucleus = set(order[:int(np.searchsorted(np.cumsum(probs[order]), 0.5)) + 1].tolist())
    chain = ne.SamplerChain(tiny, SamplingParams(temperature=1.0, top_k=0, top_p=0.5, seed=2))
    assert {chain.pick(row) for _ in range(300)} <= nucleus


@pytest.mark.parametrize(("params", "field"), [(SamplingParams(grammar="root ::= \"a\""), "grammar"),
                                               (SamplingParams(mirostat=2), "mirostat")])
def test_what_it_cannot_honour_is_refused(tiny, params, field):
    with pytest.raises(UnsupportedFeatureError) as caught:
        ne.SamplerChain(tiny, params)
    assert caught.value.field == field
