"""Speculative decoding mechanics: n-gram drafts, back-off, the sampled distribution, draft models."""

from __future__ import annotations

import numpy as np
import pytest

from llamarun.errors import InvalidParameterError, ModelLoadError
from llamarun.runtime import GenerationRequest, Runtime, RuntimeConfig, SyncClient
from llamarun.runtime.draft_cost import DecodeCost, best_draft_length
from llamarun.runtime.speculative import MatchAcceptance, NgramIndex, Speculation, SpeculationState
from llamarun.types import SamplingParams
from spec_helpers import with_cheap_drafts
from tinymodel import write_tiny_gguf

PROMPT = [10, 11, 12] * 20  # a repeating prompt: n-gram drafts exist from the first decode
# random weights give a flat distribution: the bias makes it a small vocabulary of about 4 tokens
WARM = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                      logit_bias={10: 9.0, 11: 9.0, 12: 9.0, 13: 8.0})


def test_ngram_drafts_what_followed_the_latest_match():
    index = NgramIndex()
    tokens = [1, 2, 3, 4, 9, 1, 2, 3, 5, 7, 1, 2, 3]
    assert index.draft(tokens, 3) == [5, 7, 1]  # the latest earlier "1 2 3" was followed by 5 7 1
    tokens += [5]
    assert index.draft(tokens, 2) == [7, 1]
    assert NgramIndex().draft([1, 2, 3, 4], 4) == []


def test_a_draft_knows_how_long_a_match_it_came_from():
    copied = list(range(100, 130))
    tokens = [7, 8] + copied + [5, 6] + copied[:20]  # 20 tokens into copying a 30-token block
    draft, match = NgramIndex().lookup(tokens, 4)
    assert draft == copied[20:24] and match == 20
    draft, match = NgramIndex().lookup([1, 2, 3, 9, 4, 2, 3], 4)
    assert draft == [9, 4, 2, 3] and match == 2  # only "2 3" repeats


def test_drafts_from_long_matches_start_with_a_higher_acceptance():
    rates = MatchAcceptance()
    assert rates.rate(2) < rates.rate(6) < rates.rate(12) < rates.rate(30)
    for _ in range(40):  # short matches' drafts missed at once, long ones were kept whole
        rates.record(2, 4, 0)
        rates.record(24, 8, 8)
    assert rates.rate(3) < 0.2 and rates.rate(20) > 0.95
    fresh = SpeculationState("ngram", 8)
    assert fresh.acceptance(rates.rate(3)) < 0.3 < 0.9 < fresh.acceptance(rates.rate(20))
    fresh.record(8, 0)  # the request's own evidence counts next to the prior
    assert fresh.acceptance(rates.rate(20)) < 0.9


def test_drafting_backs_off_after_misses_and_recovers():
    state = SpeculationState("ngram", 8)
    assert state.wants() == 8
    state.record(8, 2)
    assert state.wants() == 3
    state.record(3, 0)
    assert state.wants() == 1
    state.record(1, 0)
    assert state.pause > 0
    paused = [state.wants() for _ in range(state.pause)]
    assert paused == [0] * len(paused)
    state.record(1, 1)
    assert state.wants() == 2 and state.pauses == 0


def test_a_copy_under_way_ends_a_pause():
    """A request that explains before it quotes its input misses while it explains; the quote's
    long n-gram match must not wait out a pause of up to 64 steps."""
    state = SpeculationState("ngram", 8)
    for _ in range(3):
        state.record(1, 0)
        state.record(1, 0)
        while state.pause:
            assert state.wants(match=3) == 0  # short matches: the pause runs on
    state.record(1, 0)
    state.record(1, 0)
    assert state.pause >= 8
    assert state.acceptance(0.95) < 0.7
    assert state.wants(match=12) > 0 and state.pause == 0 and state.pauses == 0
    assert state.acceptance(0.95) == 0.95  # the explanation's misses no longer weigh on the copy


def _costs(one: float, extra: float, sizes=range(1, 40)) -> DecodeCost:
    cost = DecodeCost()
    for t in sizes:
        cost.observe(t, one + extra * (t - 1))
    return cost


def test_draft_length_maximises_tokens_per_second_at_this_machines_decode_costs():
    cheap, dear = _costs(10.0, 1.0), _costs(10.0, 6.0)  # an extra token: a tenth, or 60%, of a decode
    assert best_draft_length(0.9, 1, 16, cheap) >= 8 and best_draft_length(0.9, 1, 16, dear) <= 3
    assert best_draft_length(0.3, 1, 16, cheap) >= 1 and best_draft_length(0.3, 1, 16, dear) == 0
    assert best_draft_length(0.9, 1, 4, cheap) == 4  # within the request's own bound
    assert best_draft_length(0.5, 1, 16, cheap) >= 1 and best_draft_length(0.3, 8, 16, cheap) == 0  # 8 share
    assert best_draft_length(0.0, 1, 16, cheap) == 0


def test_a_draft_promising_only_a_little_is_not_made():
    """Acceptance is an estimate and a missed draft costs its rows: a draft must promise 5% more
    tokens per second than none (here a second row costs 0.9 of a decode: at 0.95 acceptance the
    best length promises 2.6%, at 1.0 it promises 10%)."""
    dear = _costs(10.0, 9.0)
    assert best_draft_length(0.95, 1, 16, dear) == 0
    assert best_draft_length(1.0, 1, 16, dear) > 0


def test_decode_costs_are_learned_and_estimated_between_what_was_seen():
    cost = DecodeCost()
    assert cost.seconds(3) == pytest.approx(1.2)  # nothing seen: the (optimistic) prior
    cost.observe(1, 0.010)
    cost.observe(9, 0.050)  # a first reading far above the estimate counts as twice the estimate
    assert cost.seconds(9) == pytest.approx(2 * 0.010 * 1.8)
    for _ in range(30):
        cost.observe(9, 0.050)  # while more readings say otherwise
    assert cost.seconds(9) == pytest.approx(0.050, rel=0.05)
    assert cost.seconds(5) == pytest.approx(0.030, rel=0.05)
    assert cost.seconds(17) > cost.seconds(9) > cost.seconds(1)
    for _ in range(100):
        cost.observe(1, 0.020)  # the machine got slower: the running mean follows
    assert cost.seconds(1) == pytest.approx(0.020, rel=0.01)


def test_sizes_above_those_measured_are_priced_to_be_tried():
    """A steep rise from one token to a few (the matrix-vector path to the batched one) is not
    extended past the sizes measured: longer drafts are tried, measured, and then chosen on their
    price (here 8 tokens cost 29 ms where extending 1 -> 4 would say 41)."""
    cost = DecodeCost()
    for _ in range(50):
        cost.observe(1, 0.0065)
        cost.observe(4, 0.0212)
    assert best_draft_length(0.98, 1, 8, cost) > 3
    for _ in range(10):
        cost.observe(8, 0.0294)
    assert best_draft_length(0.98, 1, 8, cost) >= 7
    for _ in range(10):
        cost.observe(8, 0.080)  # measured dear: its price, not the guess, decides
    assert best_draft_length(0.98, 1, 8, cost) == 3


def test_one_slow_first_reading_does_not_stop_drafting():
    """Sizes above the batch are measured only when requests draft: a decode slowed by another
    process, taken as the price, would stop drafting there for good."""
    cost = DecodeCost()
    for _ in range(20):
        cost.observe(1, 0.0097)
    cost.observe(9, 0.200)  # twenty times a one-token decode, once
    assert best_draft_length(0.99, 1, 8, cost) > 0


def test_drafting_evidence_fades_so_a_request_tries_again():
    state = SpeculationState("ngram", 8)
    cheap = _costs(10.0, 1.0)
    assert best_draft_length(state.acceptance(), 8, 8, cheap) >= 1  # a new request tries, even in a full batch
    for _ in range(8):
        state.record(2, 0)
    assert best_draft_length(state.acceptance(), 8, 8, cheap) == 0
    assert best_draft_length(state.acceptance(), 1, 8, cheap) >= 1
    for _ in range(100):  # steps it skipped: the evidence fades, so it tries again later (its draft at 8 sharing
        # promises just over the 5% a draft must: 40 skips left it at 0.72 acceptance, whose best draft promises 3.3%)
        state.skip()
    assert best_draft_length(state.acceptance(), 8, 8, cheap) >= 1


def test_a_full_batch_drafts_less_for_requests_whose_drafts_miss(tmp_path):
    """Drafts from the repeated prompt, sampled at temperature 1 over about 4 likely tokens: about 60% miss."""
    target = write_tiny_gguf(tmp_path / "batch.gguf", seed=5)
    config = RuntimeConfig(n_ctx=512, n_slots=8, n_threads=2)
    drafted = {}
    for clients in (1, 8):
        with Runtime(target, config) as rt:
            with_cheap_drafts(rt)  # the subject is the batch rule, not this machine's decode costs
            _tokens(SyncClient(rt), Speculation(type="ngram", n_max=8), range(clients), n=48)
            snap = rt.snapshot()
        drafted[clients] = (snap.spec_drafted / clients, snap.spec_accepted / clients)
    assert drafted[1][0] > 0, drafted  # alone, it drafts
    assert drafted[8][0] < 0.75 * drafted[1][0], drafted  # measured: 27 drafted a request alone, 14.4 in 8


def test_a_running_batch_with_no_queue_drafts_only_when_nearly_all_of_it_can(tmp_path):
    """With every request running and none waiting, the step count is the slowest request's: one
    request's drafts beside one that cannot draft would only add work, so none are made."""
    target = write_tiny_gguf(tmp_path / "mixed.gguf", seed=5)
    with Runtime(target, RuntimeConfig(n_ctx=512, n_slots=2, n_threads=2)) as rt:
        client = SyncClient(rt)
        ngram = Speculation(type="ngram", n_max=8)

        def copying(seed):
            return client.stream(GenerationRequest(prompt=PROMPT, max_tokens=24, ignore_eos=True, speculative=ngram,
                                                   sampling=SamplingParams(**{**WARM.__dict__, "seed": seed})))

        alone = copying(0).wait()
        other = client.stream(GenerationRequest(prompt=list(range(20, 40)), max_tokens=200, ignore_eos=True,
                                                speculative=Speculation(type="off")))
        beside = copying(0).wait()
        other.wait()
    assert alone.timings.drafted_tokens > 0
    assert beside.timings.drafted_tokens == 0


def test_settings_are_checked():
    with pytest.raises(InvalidParameterError):
        Speculation(type="medusa")
    with pytest.raises(InvalidParameterError):
        Speculation(n_max=1000)


def _tokens(client, speculative, seeds, n=6):
    streams = [client.stream(GenerationRequest(prompt=PROMPT, max_tokens=n, ignore_eos=True, speculative=speculative,
                                               sampling=SamplingParams(**{**WARM.__dict__, "seed": s})))
               for s in seeds]
    return [s.wait() for s in streams]


def _chi2(a: np.ndarray, b: np.ndarray) -> float:
    values = np.unique(np.concatenate([a, b]))
    ca = np.array([(a == v).sum() for v in values], dtype=float)
    cb = np.array([(b == v).sum() for v in values], dtype=float)
    total = ca + cb
    ea, eb = total * len(a) / (len(a) + len(b)), total * len(b) / (len(a) + len(b))
    return float(((ca - ea) ** 2 / ea).sum() + ((cb - eb) ** 2 / eb).sum())


def _permutation_p(a: np.ndarray, b: np.ndarray, rounds: int = 300) -> float:
    rng = np.random.default_rng(0)
    observed, pooled = _chi2(a, b), np.concatenate([a, b])
    hits = 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        hits += _chi2(pooled[:len(a)], pooled[len(a):]) >= observed
    return (hits + 1) / (rounds + 1)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("spec")
    target = write_tiny_gguf(root / "target.gguf", seed=3)
    draft = write_tiny_gguf(root / "draft.gguf", seed=3, n_layer=1)  # same vocabulary, a smaller model
    other = write_tiny_gguf(root / "other.gguf", specials=["<s>", "<pad>", "</s>"])  # another vocabulary
    return target, draft, other


@pytest.mark.parametrize("kind", ["ngram", "draft"])
def test_sampled_output_keeps_its_distribution(tiny_pair, kind):
    target, draft, _ = tiny_pair
    config = RuntimeConfig(n_ctx=256, n_slots=8, n_threads=2, max_queue=512, speculative_p_min=0.0,
                           speculative=Speculation(draft_model=str(draft)) if kind == "draft" else None)
    with Runtime(target, config) as rt:
        client = SyncClient(rt)
        seeds = range(400)
        plain = _tokens(client, Speculation(type="off"), seeds)
        spec = _tokens(client, Speculation(type=kind, n_max=3), seeds)
        again = _tokens(client, Speculation(type=kind, n_max=3), range(1000, 1400))
        snap = rt.snapshot()
    if kind == "ngram":  # the draft model drafts from its own (unbiased) logits: rarely kept
        assert 0 < snap.spec_accepted < snap.spec_drafted  # drafts were both kept and rejected
    assert snap.spec_drafted > 0
    # the same seed draws the same tokens: each emitted token is one draw of the request's chain
    assert sum(a.token_ids == b.token_ids for a, b in zip(plain, spec)) >= 0.97 * len(plain)
    for pos in range(1, 6):  # positions after the first token may come from drafts
        a = np.array([r.token_ids[pos] for r in plain])
        b = np.array([r.token_ids[pos] for r in again])  # other seeds: an independent sample
        assert _permutation_p(a, b) > 0.001, f"position {pos}"


def test_greedy_draft_model_drafts_are_kept(tiny_pair):
    target, _, _ = tiny_pair  # the model as its own draft model: its greedy drafts are all right
    config = RuntimeConfig(n_ctx=256, n_slots=4, n_threads=2, speculative_p_min=0.0,
                           speculative=Speculation(type="draft", n_max=4, draft_model=str(target)))
    with Runtime(target, config) as rt:
        client = SyncClient(rt)
        greedy = SamplingParams(temperature=0)
        runs = {kind: [client.generate(GenerationRequest(prompt=[5, 6, 7 + i], max_tokens=40, ignore_eos=True,
                                                         sampling=greedy, speculative=Speculation(type=kind)))
                       for i in range(4)] for kind in ("off", "draft")}
        snap = rt.snapshot()
    assert [r.token_ids for r in runs["draft"]] == [r.token_ids for r in runs["off"]]
    assert snap.spec_accepted >= 0.9 * snap.spec_drafted > 0


def test_draft_model_of_another_vocabulary_is_refused(tiny_pair):
    target, _, other = tiny_pair
    with pytest.raises(ModelLoadError, match="vocabulary"):
        Runtime(target, RuntimeConfig(n_ctx=256, n_slots=2, speculative=Speculation(draft_model=str(other))))


def test_request_cannot_name_another_draft_model(tiny_pair):
    target, draft, _ = tiny_pair
    with Runtime(target, RuntimeConfig(n_ctx=256, n_slots=2, n_threads=2)) as rt:
        client = SyncClient(rt)
        for asked in (Speculation(type="draft"), Speculation(draft_model=str(draft))):
            with pytest.raises(InvalidParameterError, match="draft"):
                client.generate(GenerationRequest(prompt=PROMPT, max_tokens=2, speculative=asked))


def test_request_field_reaches_the_runtime_request():
    from pydantic import ValidationError

    from llamarun.http.openai.schemas import ChatCompletionRequest
    from llamarun.serving import Options, options_request

    spec = options_request("hi", Options(speculative={"type": "ngram", "n_max": 4}), grammar=None, timeout=None)
    assert spec.speculative == Speculation(type="ngram", n_max=4)
    body = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}],
                                 speculative={"type": "draft", "draft_model": "small"})
    assert body.speculative.speculation() == Speculation(type="draft", draft_model="small")
    with pytest.raises(ValidationError):
        Options(speculative={"type": "medusa"})
