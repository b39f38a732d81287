"""KV-cache types: a quantized cache loads and generates, its size is what llama.cpp allocates,
and a quantized V cache without flash attention is refused before llama.cpp sees it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from llamarun.engine import Batch, Context, Model
from llamarun.errors import InvalidParameterError
from llamarun.gguf import read_model_facts
from llamarun.hardware import ResourceRequest, estimate_memory
from llamarun.runtime import RuntimeConfig
from llamarun.types import KV_CACHE_TYPES, ContextOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardware"))
from test_hw_estimate import llama_log  # noqa: E402  (llama.cpp's own buffer sizes, from its log)


def _greedy(ctx: Context, model: Model, prompt: str, n: int) -> str:
    tokens = model.tokenize(prompt)
    batch = Batch(max(len(tokens), 1))
    batch.add_tokens(tokens, 0, 0)
    ctx.decode(batch)
    out: list[int] = []
    pos = len(tokens)
    for _ in range(n):
        token = int(np.argmax(ctx.logits(batch.n_tokens - 1)))
        if model.vocab.is_eog(token):
            break
        out.append(token)
        batch.clear()
        batch.add(token, pos, 0, True)
        pos += 1
        ctx.decode(batch)
    batch.close()
    return model.detokenize(out)


@pytest.mark.smollm2
@pytest.mark.parametrize(("type_k", "type_v"), [("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q8_0", "f16")])
def test_quantized_cache_generates_and_matches_llama_cpp_size(smollm2_path: Path, type_k: str, type_v: str) -> None:
    facts = read_model_facts(smollm2_path)
    options = ContextOptions(n_ctx=2048, n_seq_max=2, type_k=type_k, type_v=type_v)
    with Model(smollm2_path) as model:
        with llama_log() as log, Context(model, options) as ctx:
            reported = log.buffers()["KV"]
            text = _greedy(ctx, model, "The capital of France is", 8)
    estimate = estimate_memory(facts, n_ctx=2048, n_seq_max=2, type_k=type_k, type_v=type_v)
    f16 = estimate_memory(facts, n_ctx=2048, n_seq_max=2)
    assert abs(estimate.kv_cache - reported) <= 0.05 * reported, (estimate.kv_cache, reported)
    assert estimate.kv_cache < f16.kv_cache
    assert "Paris" in text or text.strip(), text


def test_quantized_v_cache_without_flash_attention_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="needs flash attention") as caught:
        ContextOptions(type_v="q8_0", flash_attn=False)
    assert caught.value.field == "type_v"
    with pytest.raises(InvalidParameterError, match="cache_type_v q4_0 .*needs flash attention"):
        RuntimeConfig(cache_type_v="q4_0", flash_attn=False)
    with pytest.raises(InvalidParameterError, match="cache_type_v"):
        ResourceRequest(cache_type_v="q4_0", flash_attn=False)
    ContextOptions(type_k="q8_0", flash_attn=False)  # a quantized K alone does not need it
    ContextOptions(type_v="q8_0", flash_attn=None)  # auto: llama.cpp turns it on for the CPU


def test_unknown_cache_type_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="type_k must be one of") as caught:
        ContextOptions(type_k="q3_k")
    assert caught.value.field == "type_k"
    assert "q8_0" in KV_CACHE_TYPES


def test_quantized_k_cache_without_flash_attention_loads(tiny_model_path: Path) -> None:
    with Model(tiny_model_path) as model, Context(model, ContextOptions(n_ctx=256, type_k="q8_0",
                                                                        flash_attn=False)) as ctx:
        assert _greedy(ctx, model, "the", 4) is not None


def test_settings_take_cache_types() -> None:
    from llamarun.config import load_settings
    from llamarun.errors import ConfigError

    settings = load_settings({"cache_type_k": "Q8_0", "cache_type_v": "q8_0"})
    assert ResourceRequest.from_settings(settings).cache_type_k == "q8_0"
    with pytest.raises(ConfigError):
        load_settings({"cache_type_v": "q3_k"})
