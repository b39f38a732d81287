"""Per-sequence sampler chains built from :class:`SamplingParams` with llama.cpp's samplers."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import GrammarError
from ..types import SamplingParams
from ._handle import NativeHandle
from ._lib import lib
from .context import Context
from .fastdist import DrawBuffer, FastDist, draw_rows, native_draw
from .model import Model

__all__ = ["SamplerChain", "sample_rows"]

_MAX_GRAMMAR_BYTES = 256 << 10


def _logit_bias(model: Model, bias: dict[int, float]) -> Any:
    llama = lib()
    for token in bias:
        model.vocab.check_token(token)
    arr = (llama.llama_logit_bias * len(bias))()
    for i, (token, value) in enumerate(bias.items()):
        arr[i].token = token
        arr[i].bias = value
    return llama.llama_sampler_init_logit_bias(model.vocab.n_tokens, len(bias), arr)


def _grammar(model: Model, grammar: str) -> Any:
    data = grammar.encode("utf-8")
    if len(data) > _MAX_GRAMMAR_BYTES:
        raise GrammarError(f"grammar of {len(data)} bytes is larger than the limit of {_MAX_GRAMMAR_BYTES}")
    ptr = lib().llama_sampler_init_grammar(model.vocab.ptr, data, b"root")
    if not ptr:
        raise GrammarError("invalid GBNF grammar: llama.cpp could not parse it (its parser wrote the reason "
                           "to stderr; a common one is repetitions that multiply out beyond 2,000 copies)")
    return ptr


def _stages(model: Model, p: SamplingParams) -> list[Callable[[], Any]]:
    """Factories for each sampler of the chain, in llama.cpp's usual order."""
    llama = lib()
    n_vocab = model.vocab.n_tokens
    stages: list[Callable[[], Any]] = []
    if p.logit_bias:
        stages.append(lambda: _logit_bias(model, dict(p.logit_bias)))
    if p.repeat_penalty != 1.0 or p.presence_penalty or p.frequency_penalty:
        last_n = model.info.n_ctx_train if p.repeat_last_n == -1 else p.repeat_last_n
        repeat = max(p.repeat_penalty, 1e-3)  # llama.cpp requires > 0
        stages.append(lambda: llama.llama_sampler_init_penalties(
            n_vocab, last_n, repeat, p.frequency_penalty, p.presence_penalty))
    if p.is_greedy:
        stages.append(llama.llama_sampler_init_greedy)
        return stages
    seed = p.native_seed
    if p.mirostat == 1:
        stages += [lambda: llama.llama_sampler_init_temp(p.temperature),
                   lambda: llama.llama_sampler_init_mirostat(n_vocab, seed, p.mirostat_tau, p.mirostat_eta, 100)]
        return stages
    if p.mirostat == 2:
        stages += [lambda: llama.llama_sampler_init_temp(p.temperature),
                   lambda: llama.llama_sampler_init_mirostat_v2(seed, p.mirostat_tau, p.mirostat_eta)]
        return stages
    if p.top_k > 0:
        stages.append(lambda: llama.llama_sampler_init_top_k(p.top_k))
    if p.typical_p < 1.0:
        stages.append(lambda: llama.llama_sampler_init_typical(p.typical_p, 1))
    if p.top_p < 1.0:
        stages.append(lambda: llama.llama_sampler_init_top_p(p.top_p, 1))
    if p.min_p > 0.0:
        stages.append(lambda: llama.llama_sampler_init_min_p(p.min_p, 1))
    stages += [lambda: llama.llama_sampler_init_temp(p.temperature), lambda: llama.llama_sampler_init_dist(seed)]
    return stages


def _fast_dist(p: SamplingParams) -> FastDist | None:
    """The numpy sampler when there is no top-k (llama.cpp's chain then works on the whole vocabulary).

    Only for the chains it implements exactly: no penalties, typical-p or mirostat.  With a top-k,
    llama.cpp's partial sort is as fast as numpy's partition and its chain is kept.
    """
    if p.is_greedy or p.top_k > 0 or p.mirostat or p.typical_p < 1.0 or p.repeat_penalty != 1.0 \
            or p.presence_penalty or p.frequency_penalty:
        return None
    seed = None if p.seed is None or p.seed < 0 else p.seed
    return FastDist(temperature=p.temperature, top_p=p.top_p, min_p=p.min_p, seed=seed,
                    logit_bias=dict(p.logit_bias) if p.logit_bias else None)


class _Candidates:
    """A reusable ``llama_token_data_array`` over the whole vocabulary, filled from logits with numpy."""

    def __init__(self, n_vocab: int) -> None:
        llama = lib()
        self.n_vocab = n_vocab
        self.data = (llama.llama_token_data * n_vocab)()
        self.view = np.ctypeslib.as_array(self.data)
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.array = llama.llama_token_data_array(self.data, n_vocab, -1, False)
        self.one = (llama.llama_token_data * 1)()
        self.one_array = llama.llama_token_data_array(self.one, 1, -1, False)

    def fill(self, context: Context, index: int) -> Any:
        self.view["id"] = self.ids
        self.view["logit"] = context.logits_view(index)
        self.view["p"] = 0.0
        self.array.size = self.n_vocab
        self.array.selected = -1
        self.array.sorted = False
        return ctypes.byref(self.array)

    def selected(self) -> int:
        return int(self.data[self.array.selected].id)

    def single(self, token: int) -> Any:
        self.one[0].id = token
        self.one[0].logit = 1.0
        self.one[0].p = 0.0
        self.one_array.size = 1
        self.one_array.selected = -1
        return ctypes.byref(self.one_array)


class SamplerChain(NativeHandle):
    """A native sampler chain for one sequence; keeps its model alive.

    A grammar is applied the way llama.cpp's own server does it: sample without
    it, check only the chosen token against the grammar, and apply the grammar to
    the whole vocabulary only when that token is rejected.  Checking 49k tokens
    against a JSON grammar costs far more than a forward pass of a small model.
    """

    _kind = "sampler chain"

    def __new__(cls, model: Any, params: SamplingParams | None = None) -> Any:
        if not isinstance(model, Model):  # another backend's model (the NumPy one) makes its own chain
            return model.new_sampler(params)
        return super().__new__(cls)

    def __init__(self, model: Model, params: SamplingParams | None = None) -> None:
        self.params = params or SamplingParams()
        llama = lib()
        chain_params = llama.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        chain = llama.llama_sampler_chain_init(chain_params)
        try:
            for make in _stages(model, self.params):
                llama.llama_sampler_chain_add(chain, make())  # the chain owns what it is given
            self._grammar = _GrammarSampler(model, self.params.grammar) if self.params.grammar else None
        except BaseException:
            llama.llama_sampler_free(chain)
            raise
        super().__init__(chain, llama.llama_sampler_free, keep=(model,))
        self._candidates = _Candidates(model.vocab.n_tokens) if self._grammar is not None else None
        p = self.params
        # plain greedy needs no candidate array: argmax over the logits (first maximum, as llama.cpp)
        self._argmax = p.is_greedy and not p.logit_bias and p.repeat_penalty == 1.0 and not (
            p.presence_penalty or p.frequency_penalty) and self._grammar is None
        self._fast = _fast_dist(self.params) if self._grammar is None else None
        # whole-vocabulary draws read the logits in place, in C, when the package has its C draw
        self._native = native_draw() and self._whole_vocabulary_draw() is not None

    def sample(self, context: Context, index: int = -1) -> int:
        """Pick the next token from the logits at batch ``index`` and accept it."""
        if self._argmax:
            self.ptr  # raises once closed  # noqa: B018
            return int(np.argmax(context.logits_view(index)))
        if self._fast is not None:
            self.ptr  # raises once closed  # noqa: B018
            if self._native:
                return self._fast.draw_at(context.logits_address(index), context.model.vocab.n_tokens)
            return self._fast.sample(context.logits_view(index))
        if self._grammar is None:
            return int(lib().llama_sampler_sample(self.ptr, context.ptr, index))
        return self._sample_constrained(context, index)

    def _sample_constrained(self, context: Context, index: int) -> int:
        llama = lib()
        chain, grammar, cand = self.ptr, self._grammar.ptr, self._candidates
        llama.llama_sampler_apply(chain, cand.fill(context, index))
        token = cand.selected()
        llama.llama_sampler_apply(grammar, cand.single(token))
        if not math.isfinite(cand.one[0].logit):  # rejected: constrain the whole vocabulary, sample again
            arr = cand.fill(context, index)
            llama.llama_sampler_apply(grammar, arr)
            llama.llama_sampler_apply(chain, arr)
            token = cand.selected()
        llama.llama_sampler_accept(chain, token)
        llama.llama_sampler_accept(grammar, token)
        return token

    @property
    def draws_whole_vocabulary(self) -> bool:
        """True when :func:`sample_rows` can draw for this chain together with others."""
        return self._whole_vocabulary_draw() is not None

    def _whole_vocabulary_draw(self) -> FastDist | None:
        if self._fast is not None and self._fast.whole_vocabulary and not self.closed:
            return self._fast
        return None

    def accept(self, token: int) -> None:
        """Feed a token the chain did not pick (e.g. prompt tokens for penalties)."""
        lib().llama_sampler_accept(self.ptr, token)

    def reset(self) -> None:
        lib().llama_sampler_reset(self.ptr)
        if self._fast is not None:
            self._fast.reset()
        if self._grammar is not None:
            lib().llama_sampler_reset(self._grammar.ptr)

    def close(self) -> None:
        super().close()
        if self._grammar is not None:
            self._grammar.close()


class _GrammarSampler(NativeHandle):
    """llama.cpp's grammar sampler on its own (not in the chain: see SamplerChain)."""

    _kind = "grammar sampler"

    def __init__(self, model: Model, grammar: str) -> None:
        super().__init__(_grammar(model, grammar), lib().llama_sampler_free, keep=(model,))


def sample_rows(chains: Sequence[SamplerChain], context: Context, indices: Sequence[int],
                buffer: DrawBuffer) -> list[int | Exception]:
    """Pick the next token of each chain from the logits at the matching batch index.

    Without the C draw (see :mod:`.fastdist`), chains that draw from the whole
    vocabulary draw together, one numpy pass per stage; each draws what it
    would alone.  The others (and all, with the C draw) sample one by one.  A
    chain that fails gets its exception in its place, so one request's failure
    is kept to that request.
    """
    if not isinstance(context, Context):  # another backend's context samples its own rows
        return context.sample_rows(chains, indices)
    picked: list[int | Exception | None] = [None] * len(chains)
    together = [] if native_draw() else [
        (r, fast) for r, chain in enumerate(chains) if (fast := chain._whole_vocabulary_draw()) is not None]
    try:
        logits = context.logits_rows([indices[r] for r, _ in together]) if len(together) > 1 else None
    except Exception:  # noqa: BLE001 - each chain then meets the error on its own below
        logits = None
    if logits is not None:
        tokens = draw_rows(logits, [f.temperature for _, f in together], [f.uniform() for _, f in together], buffer)
        for (r, _), token in zip(together, tokens, strict=True):
            picked[r] = token
    for r, chain in enumerate(chains):
        if picked[r] is None:
            try:
                picked[r] = chain.sample(context, indices[r])
            except Exception as exc:  # noqa: BLE001 - returned in its place
                picked[r] = exc
    return picked  # type: ignore[return-value]
