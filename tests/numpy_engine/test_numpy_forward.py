"""The forward pass against llama.cpp on SmolLM2, batching across sequences, and the KV cache.

llama.cpp is not one fixed function: its flash-attention and plain attention kernels round
differently, and SmolLM2-135M (Q4_1) turns those roundings into logits whose cosine drops to
about 0.95 at some positions.  So the agreement asked of the NumPy backend is measured next to
llama.cpp's agreement with itself (flash attention on vs off) in the same run, besides the
absolute bounds: argmax on 95% of positions, median cosine 0.999.  On the same weights held as
F32 with an F32 KV cache, llama.cpp computes in float32 too, and the bounds hold per position.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from llamarun import engine
from llamarun import numpy_engine as ne
from llamarun.errors import DecodeAbortedError, KVCacheFullError
from llamarun.types import ContextOptions

PROMPTS = [
    "The capital of France is",
    "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
    "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, in a land far away, there lived",
    "import numpy as np\nx = np.arange(10)\nprint(x.sum())",
    "The quick brown fox jumps over the lazy dog. 1234 + 5678 =",
]
_TAIL = " and then the story went on with more words about many different things happening in the world today"


def _sequences(model):
    tail = model.tokenize(_TAIL, add_special=False) * 2
    return [(model.tokenize(p, parse_special=True) + tail)[:32] for p in PROMPTS]


def _all_logits(ctx, batch_type, tokens):
    ctx.clear_memory()
    batch = batch_type(len(tokens), 1)
    for i, token in enumerate(tokens):
        batch.add(token, i, 0, True)
    ctx.decode(batch)
    return np.stack([ctx.logits(i) for i in range(len(tokens))])


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def agreement(smol_llama, smol_numpy):
    """Cosines and argmax agreement per position, numpy vs llama.cpp and llama.cpp vs itself."""
    seqs = _sequences(smol_llama)
    options = ContextOptions(n_ctx=256, n_batch=64, n_seq_max=1, n_threads=1)
    default = engine.Context(smol_llama, options)
    plain = engine.Context(smol_llama, ContextOptions(n_ctx=256, n_batch=64, n_seq_max=1, n_threads=1, flash_attn=False))
    ours = ne.Context(smol_numpy, options)
    ref = [_all_logits(default, engine.Batch, s) for s in seqs]
    own = [_all_logits(plain, engine.Batch, s) for s in seqs]
    mine = [_all_logits(ours, ne.Batch, s) for s in seqs]

    def stats(xs):
        cos = np.concatenate([_cosines(a, b) for a, b in zip(xs, ref, strict=True)])
        same = np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(xs, ref, strict=True)])
        return cos, same

    return {"numpy": stats(mine), "llama.cpp without flash attention": stats(own)}


def test_logits_agree_with_llama_cpp(agreement):
    cos, same = agreement["numpy"]
    base_cos, _ = agreement["llama.cpp without flash attention"]
    for name, (c, a) in agreement.items():
        print(f"{name} vs llama.cpp: argmax {a.mean():.3f}, cosine median {np.median(c):.5f}, "
              f">= 0.999 on {np.mean(c >= 0.999):.3f}, worst {c.min():.4f}")
    assert len(cos) == 32 * len(PROMPTS)
    assert same.mean() >= 0.95
    assert np.median(cos) >= 0.999
    # as close to llama.cpp as llama.cpp's two attention kernels are to each other
    assert np.mean(cos >= 0.999) >= np.mean(base_cos >= 0.999) - 0.05
    assert cos.min() >= base_cos.min() - 0.01


def _greedy(ctx, batch_type, prompt, n):
    """``n`` greedy tokens after ``prompt``, and the logits at each step."""
    ctx.clear_memory()
    batch = batch_type(64, 1)
    batch.add_tokens(prompt, 0, 0)
    ctx.decode(batch)
    out, margins = [], []
    for k in range(n):
        logits = np.array(ctx.logits_view(-1))
        token = int(np.argmax(logits))
        out.append(token)
        margins.append(logits)  # the step's logits: how far behind the best any other token is
        batch.clear()
        batch.add(token, len(prompt) + k, 0, True)
        ctx.decode(batch)
    return out, margins


NEAR_TIE = 0.5  # logits; llama.cpp's two attention kernels move the best two logits' gap by up to about 0.3


def test_greedy_generations_part_from_llama_cpp_only_at_near_ties(smol_llama, smol_numpy):
    """Greedy 32-token generations, each prompt alone: identical to llama.cpp's, or identical up to
    a step where the token taken instead is within NEAR_TIE of llama.cpp's best logit there.

    How often the generations are identical throughout depends on the CPU (llama.cpp's kernels
    round differently on each: 3 of 6 prompts on one machine, 1 of 6 on another), so that rate is
    printed next to llama.cpp's agreement with itself (flash attention on vs off), not asserted.
    """
    options = ContextOptions(n_ctx=256, n_batch=64, n_seq_max=1, n_threads=1)
    ref_ctx = engine.Context(smol_llama, options)
    contexts = {"numpy": ne.Context(smol_numpy, options),
                "llama.cpp without flash attention": engine.Context(smol_llama, replace(options, flash_attn=False))}
    prompts = [smol_llama.tokenize(p, parse_special=True) for p in PROMPTS]
    parted: dict[str, list[tuple[int, float]]] = {name: [] for name in contexts}
    for prompt in prompts:
        ref, steps = _greedy(ref_ctx, engine.Batch, prompt, 32)
        for name, ctx in contexts.items():
            ours, _ = _greedy(ctx, ne.Batch if name == "numpy" else engine.Batch, prompt, 32)
            at = next((i for i, (a, b) in enumerate(zip(ref, ours)) if a != b), None)
            if at is not None:  # how far behind llama.cpp's best the token taken instead is, in its logits
                parted[name].append((at, float(steps[at].max() - steps[at][ours[at]])))
    for name, where in parted.items():
        print(f"{name}: greedy 32-token generations identical to llama.cpp's on {len(prompts) - len(where)}"
              f"/{len(prompts)} prompts; the others part at (step, llama.cpp's best logit minus the token's): "
              f"{[(i, round(m, 3)) for i, m in where]}")
    assert all(margin < NEAR_TIE for _, margin in parted["numpy"]), parted["numpy"]


@pytest.fixture(scope="module")
def smol_f32(smollm2_path, tmp_path_factory):
    """SmolLM2's Q4_1 weights held as F32 (the same numbers), on both backends: llama.cpp then
    computes in float32 too (no quantized activations), with a float32 KV cache."""
    from numpy_variants import write_f32_copy

    path = write_f32_copy(smollm2_path, tmp_path_factory.mktemp("smol-f32") / "smollm2-f32.gguf")
    theirs, ours = engine.Model(path), ne.Model(path)
    yield theirs, ours
    theirs.close()
    ours.close()


F32_CONTEXT = ContextOptions(n_ctx=256, n_batch=64, n_seq_max=1, n_threads=1, type_k="f32", type_v="f32")


@pytest.mark.parametrize("flash_attn", [True, False])
def test_in_float32_the_logits_agree_at_every_position(smol_f32, flash_attn):
    """The issue's bounds, per position: cosine at least 0.999 and the same argmax on 95% (measured
    here: every position at 0.99998 or more, argmax on all)."""
    smol_llama_f32, smol_numpy_f32 = smol_f32
    seqs = _sequences(smol_llama_f32)
    ref_ctx = engine.Context(smol_llama_f32, replace(F32_CONTEXT, flash_attn=flash_attn))
    ours_ctx = ne.Context(smol_numpy_f32, F32_CONTEXT)
    ref = [_all_logits(ref_ctx, engine.Batch, s) for s in seqs]
    ours = [_all_logits(ours_ctx, ne.Batch, s) for s in seqs]
    cos = np.concatenate([_cosines(a, b) for a, b in zip(ours, ref, strict=True)])
    same = np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(ours, ref, strict=True)])
    print(f"float32, flash attention {flash_attn}: argmax {same.mean():.3f}, cosine worst {cos.min():.6f}")
    assert len(cos) == 32 * len(PROMPTS)
    assert cos.min() >= 0.999
    assert same.mean() >= 0.95


def test_in_float32_greedy_generations_match_on_most_prompts(smol_f32):
    smol_llama_f32, smol_numpy_f32 = smol_f32
    ref_ctx, ours_ctx = engine.Context(smol_llama_f32, F32_CONTEXT), ne.Context(smol_numpy_f32, F32_CONTEXT)
    prompts = [smol_llama_f32.tokenize(p, parse_special=True) for p in PROMPTS]
    same = sum(_greedy(ref_ctx, engine.Batch, p, 32)[0] == _greedy(ours_ctx, ne.Batch, p, 32)[0] for p in prompts)
    print(f"float32: greedy 32-token generations identical to llama.cpp's on {same}/{len(prompts)} prompts")
    assert same > len(prompts) // 2


def test_several_sequences_in_one_batch_match_each_alone(smol_numpy):
    seqs = [s[:n] for s, n in zip(_sequences(smol_numpy)[:3], (5, 11, 17), strict=True)]
    ctx = ne.Context(smol_numpy, ContextOptions(n_ctx=192, n_batch=64, n_seq_max=3, n_threads=1))
    alone = [_all_logits(ctx, ne.Batch, s)[-1] for s in seqs]
    ctx.clear_memory()
    batch = ne.Batch(64, 1)
    last = [batch.add_tokens(s, 0, seq) for seq, s in enumerate(seqs)]
    ctx.decode(batch)
    for index, expected in zip(last, alone, strict=True):
        np.testing.assert_allclose(ctx.logits(index), expected, rtol=1e-4, atol=1e-3)


def test_kv_cache_operations(smol_numpy):
    seq = _sequences(smol_numpy)[0][:12]
    ctx = ne.Context(smol_numpy, ContextOptions(n_ctx=64, n_batch=32, n_seq_max=2, n_threads=1))
    full = _all_logits(ctx, ne.Batch, seq)
    assert ctx.seq_pos_max(0) == 11 and ctx.seq_pos_max(1) == -1
    ctx.seq_cp(0, 1, -1, 8)  # a shared prefix, then the rest recomputed on the copy
    assert ctx.seq_pos_max(1) == 7
    batch = ne.Batch(32, 1)
    batch.add_tokens(seq[8:], 8, 1)
    ctx.decode(batch)
    np.testing.assert_allclose(ctx.logits(-1), full[-1], rtol=1e-4, atol=1e-3)
    assert ctx.seq_rm(0, 6, -1) and ctx.seq_pos_max(0) == 5
    batch.clear()
    batch.add_tokens(seq[6:], 6, 0)
    ctx.decode(batch)
    np.testing.assert_allclose(ctx.logits(-1), full[-1], rtol=1e-4, atol=1e-3)
    with pytest.raises(KVCacheFullError):  # 32 cells a sequence: 12 + 24 do not fit
        ctx.decode(_batch_of(seq * 2, 12, 0))
    assert ctx.seq_pos_max(0) == 11  # a refused batch leaves the cache as it was


def _batch_of(tokens, start, seq):
    batch = ne.Batch(len(tokens), 1)
    batch.add_tokens(tokens, start, seq)
    return batch


def test_abort_leaves_the_cache_as_it_was(smol_numpy):
    seq = _sequences(smol_numpy)[1][:20]
    ctx = ne.Context(smol_numpy, ContextOptions(n_ctx=64, n_batch=32, n_seq_max=1, n_threads=1))
    ctx.decode(_batch_of(seq[:10], 0, 0))
    ctx.abort()
    with pytest.raises(DecodeAbortedError):
        ctx.decode(_batch_of(seq[10:], 10, 0))
    assert ctx.seq_pos_max(0) == 9
    ctx.decode(_batch_of(seq[10:], 10, 0))  # the flag is cleared: the next decode runs
    assert ctx.seq_pos_max(0) == 19
