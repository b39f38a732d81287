"""Real behaviour with SmolLM2: greedy tokens equal llama.cpp's reference path; a factual answer."""

from __future__ import annotations

import pytest

import llamarun

PROMPT = "<|im_start|>user\nWrite a short poem about the sea.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def model(smollm2_path):
    with llamarun.load(smollm2_path, n_ctx=2048, n_slots=1, n_threads=2) as m:
        yield m


def test_greedy_tokens_match_llama_cpp_reference(model, smollm2_path):
    from llama_cpp import Llama  # the high-level class is allowed here, as the oracle

    # llama.cpp resolves flash attention "auto" (our default) to enabled on CPU; the oracle must match.
    oracle = Llama(model_path=str(smollm2_path), n_ctx=2048, n_threads=2, n_batch=512, flash_attn=True, verbose=False)
    try:
        prompt_tokens = oracle.tokenize(PROMPT.encode(), add_bos=False, special=True)
        expected = []
        for token in oracle.generate(prompt_tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            if token == oracle.token_eos() or len(expected) == 48:
                break
            expected.append(token)
    finally:
        oracle.close()
    ours = model.generate(prompt_tokens, max_tokens=48, temperature=0, repeat_penalty=1.0, ignore_eos=False)  # as the oracle
    assert list(ours.token_ids[: len(expected)]) == expected


def test_capital_of_france(model):
    result = model.chat(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        temperature=0, max_tokens=32)
    assert "Paris" in result.text
    assert result.finish_reason == llamarun.FinishReason.STOP
    assert result.timings.generated_tokens == len(result.token_ids) > 0
    assert result.prompt_tokens > 0


def test_streaming_chunks_concatenate_to_result(model):
    messages = [{"role": "user", "content": "Name three colours."}]
    chunks = list(model.chat(messages, stream=True, temperature=0, max_tokens=24))
    full = model.chat(messages, temperature=0, max_tokens=24)
    assert "".join(c.text for c in chunks) == full.text
    assert chunks[-1].finish_reason is not None and chunks[-1].timings is not None


def test_max_tokens_gives_length(model):
    result = model.generate("Once upon a time", max_tokens=5, temperature=0, ignore_eos=True)
    assert result.finish_reason == llamarun.FinishReason.LENGTH
    assert len(result.token_ids) == 5


def test_stop_string_is_never_emitted(model):
    base = model.generate("1, 2, 3, 4, 5,", max_tokens=20, temperature=0)
    assert " 7" in base.text
    stopped = model.generate("1, 2, 3, 4, 5,", max_tokens=20, temperature=0, stop=[" 7"])
    assert stopped.finish_reason == llamarun.FinishReason.STOP
    assert " 7" not in stopped.text
    assert base.text.startswith(stopped.text)
    streamed = "".join(c.text for c in model.generate("1, 2, 3, 4, 5,", max_tokens=20, temperature=0,
                                                        stop=[" 7"], stream=True))
    assert streamed == stopped.text


def test_tokenize_detokenize(model):
    tokens = model.tokenize("Hello 世界", add_special=False)
    assert model.detokenize(tokens) == "Hello 世界"


def test_seeded_sampling_is_reproducible(model):
    a = model.generate("The weather today", max_tokens=16, temperature=0.9, seed=42)
    b = model.generate("The weather today", max_tokens=16, temperature=0.9, seed=42)
    assert a.token_ids == b.token_ids


def test_chat_with_json_schema_and_forced_tool_call(model):
    import json

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}
    result = model.chat([{"role": "user", "content": "Which city is the capital of France? Reply in JSON."}],
                        response_format=schema, temperature=0, max_tokens=40)
    assert set(json.loads(result.content)) == {"city"}
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                       "required": ["city"]}}}]
    called = model.chat([{"role": "user", "content": "What is the weather in Paris?"}], tools=tools,
                        tool_choice="required", temperature=0, max_tokens=60)
    assert called.tool_calls and called.tool_calls[0].name == "get_weather"
    assert isinstance(called.tool_calls[0].arguments["city"], str)


def test_deeply_nested_grammar_is_refused_before_llama_cpp(model):
    from llamarun.errors import GrammarError

    with pytest.raises(GrammarError):
        model.generate("x", grammar="root ::= " + "(" * 60000 + '"a"' + ")" * 60000, max_tokens=2)
