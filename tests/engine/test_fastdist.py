"""The numpy sampler against llama.cpp's own samplers: same candidates, same probabilities, honest draws."""

from __future__ import annotations

import ctypes
import sys

import numpy as np
import pytest
from llama_cpp import llama_cpp as lc  # the oracle (src/ reaches llama.cpp only through engine/)

from llamarun.engine import Batch, Context, DrawBuffer, Model, SamplerChain, sample_rows
from llamarun.engine import fastdist
from llamarun.engine.fastdist import FastDist, draw_rows, native_draw
from llamarun.errors import ClosedHandleError
from llamarun.types import ContextOptions, SamplingParams

N_VOCAB = 49152


def llama_cpp_distribution(logits: np.ndarray, *, top_p: float, min_p: float, temperature: float):
    """Candidates and probabilities after llama.cpp's top-p, min-p and temperature samplers."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    try:
        if top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(min_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
        data = (lc.llama_token_data * len(logits))()
        view = np.ctypeslib.as_array(data)
        view["id"] = np.arange(len(logits))
        view["logit"] = logits
        array = lc.llama_token_data_array(data, len(logits), -1, False)
        lc.llama_sampler_apply(chain, ctypes.byref(array))
        kept = view[:array.size]
    finally:
        lc.llama_sampler_free(chain)
    weights = np.exp(kept["logit"].astype(np.float64) - kept["logit"].max())
    return kept["id"].astype(np.int64), weights / weights.sum()


@pytest.mark.parametrize("scale", [0.5, 2.6, 8.0])
@pytest.mark.parametrize(("top_p", "min_p", "temperature"),
                         [(1.0, 0.0, 0.8), (0.95, 0.0, 1.0), (0.5, 0.0, 0.7), (1.0, 0.05, 1.0), (0.9, 0.02, 1.3)])
def test_same_candidates_and_probabilities_as_llama_cpp(scale, top_p, min_p, temperature):
    logits = (np.random.default_rng(7).standard_normal(N_VOCAB) * scale).astype(np.float32)
    ours = FastDist(temperature=temperature, top_p=top_p, min_p=min_p, seed=1).distribution(logits)
    theirs = llama_cpp_distribution(logits, top_p=top_p, min_p=min_p, temperature=temperature)
    # llama.cpp sums top-p's probabilities in float32: over tens of thousands of nearly equal
    # tokens its cut may land one token away from the float64 one; only boundary tokens may differ
    differ = np.setxor1d(ours[0], theirs[0])
    assert len(differ) <= 2
    union = np.union1d(ours[0], theirs[0])
    assert all(logits[d] <= np.sort(logits[union])[len(differ) - 1] for d in differ)
    common = np.intersect1d(ours[0], theirs[0])
    p_ours = dict(zip(ours[0].tolist(), ours[1]))
    p_theirs = dict(zip(theirs[0].tolist(), theirs[1]))
    np.testing.assert_allclose([p_ours[t] for t in common.tolist()], [p_theirs[t] for t in common.tolist()],
                               rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize(("top_p", "min_p"), [(1.0, 0.0), (0.8, 0.0), (1.0, 0.1)])
def test_draws_follow_the_distribution(top_p, min_p):
    logits = np.array([3.0, 2.5, 2.0, 1.0, 0.0, -1.0, -3.0, 0.5] + [-50.0] * 300, dtype=np.float32)
    sampler = FastDist(temperature=0.9, top_p=top_p, min_p=min_p, seed=3)
    ids, probs = sampler.distribution(logits)
    draws = np.bincount([sampler.sample(logits) for _ in range(20000)], minlength=len(logits)) / 20000
    expected = np.zeros(len(logits))
    expected[ids] = probs
    assert np.abs(draws - expected).max() < 0.015  # about 5 standard errors for these probabilities
    assert draws[np.setdiff1d(np.arange(len(logits)), ids)].sum() == 0


def test_logit_bias_and_seed():
    logits = np.zeros(1000, dtype=np.float32)
    forced = FastDist(temperature=1.0, seed=5, logit_bias={123: 100.0})
    assert {forced.sample(logits) for _ in range(50)} == {123}
    a, b = FastDist(temperature=1.0, seed=9), FastDist(temperature=1.0, seed=9)
    assert [a.sample(logits) for _ in range(30)] == [b.sample(logits) for _ in range(30)]
    a.reset()
    b2 = FastDist(temperature=1.0, seed=9)
    assert [a.sample(logits) for _ in range(5)] == [b2.sample(logits) for _ in range(5)]


@pytest.mark.parametrize("top_p", [0.95, 1.0])
def test_sampler_chain_uses_it_without_top_k_and_reproduces_with_a_seed(tiny_model_path, draw_path, top_p):
    params = SamplingParams(temperature=0.9, top_k=0, top_p=top_p, seed=11)
    with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=256, n_threads=2)) as ctx:
        runs = []
        for _ in range(2):
            ctx.seq_rm(-1)
            with Batch(16) as batch, SamplerChain(model, params) as chain:
                index = batch.add_tokens([10, 20, 30], 0, 0)
                ctx.decode(batch)
                runs.append([chain.sample(ctx, index) for _ in range(5)])
                assert chain._fast is not None
                assert chain._native == (top_p == 1.0 and draw_path == "native")
        assert runs[0] == runs[1]


def test_random_numbers_are_the_generators_in_order_and_start_again_on_reset():
    dist = FastDist(temperature=0.8, seed=21)
    expected = np.random.Generator(np.random.PCG64(21)).random(150).tolist()
    assert [dist.uniform() for _ in range(150)] == expected
    dist.reset()
    assert [dist.uniform() for _ in range(70)] == expected[:70]


def test_rows_drawn_together_draw_what_each_would_alone():
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((6, 1000)) * np.array([[0.1], [1], [3], [10], [30], [1]])).astype(np.float32)
    logits[5, 500:] = -np.inf  # tokens of zero weight are never drawn
    temperatures = [1.0, 0.8, 0.3, 1.5, 1e-35, 0.7]
    buffer = DrawBuffer(1000)
    for _ in range(300):
        uniforms = [float(u) for u in rng.random(6)]
        together = draw_rows(logits, temperatures, uniforms, buffer)
        alone = [draw_rows(logits[r:r + 1], [temperatures[r]], [uniforms[r]], DrawBuffer(1000))[0] for r in range(6)]
        assert together == alone
        assert together[4] == int(np.argmax(logits[4])) and together[5] < 500
    assert draw_rows(logits[:1], [1.0], [0.0], buffer) == [int(np.argmax(logits[0] > -np.inf))]
    with pytest.raises(ValueError, match="DrawBuffer"):
        draw_rows(logits[:, :999], temperatures, uniforms, buffer)


@pytest.fixture(params=["native", "numpy"])
def draw_path(request, monkeypatch):
    """Runs a test with the C draw (when built) and with numpy's."""
    if request.param == "numpy":
        monkeypatch.setattr(fastdist, "_native_draw", None)
    elif not native_draw():
        pytest.skip("built without the C draw")
    return request.param


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="other platforms may install without a C compiler")
def test_the_c_draw_is_built_on_linux():
    assert native_draw()


@pytest.mark.skipif(not native_draw(), reason="built without the C draw")
def test_c_draw_draws_what_numpy_draws():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.choice([1, 7, 255, 256, 257, 1000, N_VOCAB]))
        logits = (rng.standard_normal(n) * rng.uniform(0.05, 30)).astype(np.float32)
        logits[rng.random(n) < 0.1] = -np.inf  # tokens of zero weight are never drawn
        logits[rng.integers(n)] = 1.0
        temperature = float(rng.choice([1.0, 0.8, 0.3, 2.0, 1e-35]))
        scale = min(1.0 / temperature, 1e30)
        u = float(rng.uniform(1e-6, 1 - 1e-6))  # at 0 and 1, only weights under 1e-7 of the total decide
        native = fastdist._native_draw(logits.ctypes.data, n, scale, u)
        assert native == draw_rows(logits[None, :], [temperature], [u], DrawBuffer(n))[0]
        for u in (0.0, 1.0 - 2 ** -53):  # never a token of zero weight
            assert logits[fastdist._native_draw(logits.ctypes.data, n, scale, u)] > -np.inf


@pytest.mark.skipif(not native_draw(), reason="built without the C draw")
def test_c_draw_follows_the_distribution_and_checks_its_arguments():
    logits = np.array([0.0, 1.0, 2.0, -1.0, -50.0, 3.0], dtype=np.float32)
    rng = np.random.default_rng(3)
    counts = np.bincount([fastdist._native_draw(logits.ctypes.data, 6, 1 / 0.7, float(u)) for u in rng.random(60000)],
                         minlength=6) / 60000
    expected = np.exp(logits / 0.7) / np.exp(logits / 0.7).sum()
    assert np.abs(counts - expected).max() < 0.01
    some_nan = np.array([np.nan, 0.0, 5.0, np.nan], dtype=np.float32)  # NaN tokens are never drawn
    assert {fastdist._native_draw(some_nan.ctypes.data, 4, 1.0, u) for u in (0.0, 0.3, 0.999)} == {1, 2}
    for broken in ([np.nan] * 4, [0.0, np.inf, 1.0], [-np.inf] * 3):  # no finite largest logit: an error
        x = np.array(broken, dtype=np.float32)
        with pytest.raises(ValueError, match="finite"):
            fastdist._native_draw(x.ctypes.data, len(x), 1.0, 0.5)
    for bad in [(0, 6, 1.0, 0.5), (logits.ctypes.data, 0, 1.0, 0.5), (logits.ctypes.data, 6, 0.0, 0.5),
                (logits.ctypes.data, 6, 1.0, 1.0), (logits.ctypes.data, 1 << 25, 1.0, 0.5)]:
        with pytest.raises(ValueError):
            fastdist._native_draw(*bad)
    with pytest.raises(TypeError):
        fastdist._native_draw(logits.ctypes.data, 6, 1.0)


def test_sample_rows_picks_what_each_chain_picks_alone(tiny_model_path, draw_path):
    params = [SamplingParams(temperature=0.9, top_k=0, top_p=1.0, seed=s) for s in (1, 2, 3)] + [
        SamplingParams(temperature=0.0), SamplingParams(temperature=0.8, top_k=0, top_p=0.9, seed=4),
        SamplingParams(temperature=0.7, top_k=5, seed=5)]
    with Model(tiny_model_path) as model, \
            Context(model, ContextOptions(n_ctx=1024, n_seq_max=6, n_threads=2)) as ctx, Batch(64, 1) as batch:
        indices = [batch.add_tokens([10 + s, 20, 30 + s], 0, s) for s in range(6)]
        ctx.decode(batch)
        rows = ctx.logits_rows(indices)
        assert all(np.array_equal(rows[r], ctx.logits_view(i)) for r, i in enumerate(indices))
        assert np.array_equal(ctx.logits_rows(indices[::-1]), rows[::-1])  # not in llama.cpp's order: a copy
        together_chains = [SamplerChain(model, p) for p in params]
        alone_chains = [SamplerChain(model, p) for p in params]
        assert [c.draws_whole_vocabulary for c in together_chains] == [True] * 3 + [False] * 3
        buffer = DrawBuffer(model.vocab.n_tokens)
        together = [sample_rows(together_chains, ctx, indices, buffer) for _ in range(5)]
        alone = [[c.sample(ctx, i) for c, i in zip(alone_chains, indices)] for _ in range(5)]
        assert together == alone
        together_chains[1].close()
        picked = sample_rows(together_chains, ctx, indices, buffer)
        assert isinstance(picked[1], ClosedHandleError)
        assert all(isinstance(t, int) for r, t in enumerate(picked) if r != 1)
        for chain in together_chains + alone_chains:
            chain.close()
