"""Chat templates render as their authors intend: SmolLM2 against llama.cpp, and well-known families."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamarun.chat import ChatTemplate, ToolCallFormat, prepare_chat
from llamarun.engine import Model, ModelInfo, apply_builtin_template
from llamarun.errors import TemplateError

TEMPLATES = Path(__file__).parent / "templates"

SYSTEM_CHATS = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3? Ünïcödé ✓"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "multi\nline\n\ntext"}],
]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
]
SIMPLE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]


def family(name: str, **tokens: str) -> ChatTemplate:
    return ChatTemplate((TEMPLATES / f"{name}.jinja").read_text(), trusted=True, **tokens)


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path):
    with Model(smollm2_path) as model:
        yield model


# -- SmolLM2 against llama.cpp's own template application -------------------------------

@pytest.mark.parametrize("messages", SYSTEM_CHATS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_smollm2_matches_llama_cpp(smollm2: Model, messages: list, add_generation_prompt: bool) -> None:
    template = ChatTemplate.for_model(smollm2)
    assert not template.is_builtin
    ours = template.render(messages, add_generation_prompt=add_generation_prompt)
    theirs = apply_builtin_template(smollm2.info.chat_template or "", messages,
                                    add_generation_prompt=add_generation_prompt)
    assert ours == theirs


def test_smollm2_adds_its_default_system_prompt(smollm2: Model) -> None:
    out = ChatTemplate.for_model(smollm2).render([{"role": "user", "content": "Hi"}])
    assert out == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                   "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_smollm2_capabilities(smollm2: Model) -> None:
    template = ChatTemplate.for_model(smollm2)
    assert template.bos_token == "<|im_start|>" and template.eos_token == "<|im_end|>"
    assert not template.supports_tools and template.supports_system_role
    assert template.tool_call_format is ToolCallFormat.JSON and template.thinking_markers is None
    assert ChatTemplate.variants(smollm2.info) == ()
    with pytest.raises(TemplateError, match="no chat template named 'tool_use'"):
        ChatTemplate.for_model(smollm2, variant="tool_use")


def test_smollm2_tool_round_trip_folds_into_plain_turns(smollm2: Model) -> None:
    out = ChatTemplate.for_model(smollm2).render(TOOL_TURNS, tools=TOOLS)
    assert out.startswith("<|im_start|>system\nBe brief.\n\nYou can call the following tools.")
    assert '{"name": "get_weather", "description": "Get the weather"' in out
    assert ('<|im_start|>assistant\n{"name": "get_weather", "arguments": {"city": "Paris"}}<|im_end|>\n'
            "<|im_start|>user\nResult of get_weather:\n22C<|im_end|>\n<|im_start|>assistant\n") in out


def test_named_variants_from_metadata() -> None:
    info = ModelInfo(path="x", architecture="llama", description="", n_params=0, size_bytes=0, n_ctx_train=0,
                     n_embd=0, n_layer=0, n_head=0, n_head_kv=0, n_vocab=0, quantization="", chat_template="{{ 'A' }}",
                     metadata={"tokenizer.chat_template.rag": "{{ 'C' }}",
                               "tokenizer.chat_template.tool_use":
                                   "B{% for t in tools %}{{ t.function.name }}{% endfor %}"})
    assert ChatTemplate.variants(info) == ("rag", "tool_use")
    assert ChatTemplate.for_model(info).render(SIMPLE) == "A"
    assert ChatTemplate.for_model(info, variant="tool_use").render(SIMPLE, tools=TOOLS) == "Bget_weather"
    assert ChatTemplate.for_model(info, variant="rag").render(SIMPLE) == "C"


def test_builtin_fallback_when_model_has_no_template() -> None:
    template = ChatTemplate(None)
    assert template.is_builtin and template.builtin_name == "chatml"
    assert template.render(SIMPLE[:2]) == apply_builtin_template("chatml", SIMPLE[:2])
    llama3 = ChatTemplate.builtin("llama3").render(SIMPLE[:2])
    assert llama3 == ("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
                      "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    with pytest.raises(TemplateError, match="unknown built-in"):
        ChatTemplate.builtin("no-such-template")


def test_broken_jinja_falls_back_to_what_llama_cpp_recognises() -> None:
    broken = "{% for m in messages %}<|start_header_id|>{{ m.role }<|end_header_id|><|eot_id|>"  # does not compile
    template = ChatTemplate(broken, trusted=True)
    assert template.is_builtin
    assert template.render(SIMPLE[:2]).startswith("<|start_header_id|>system<|end_header_id|>")


# -- well-known families ----------------------------------------------------------------

def test_qwen25_chatml_with_tools() -> None:
    template = family("Qwen-Qwen2.5-7B-Instruct")
    assert template.render(SIMPLE) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!"
        "<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
    assert template.supports_tools and template.supports_tool_calls
    assert template.tool_call_format is ToolCallFormat.HERMES
    out = template.render(TOOL_TURNS, tools=TOOLS)
    assert out.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions")
    assert ('<tools>\n{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", '
            '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
            "</tools>") in out
    assert out.endswith(
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", '
        '"arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n22C\n'
        "</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_qwen25_default_system_prompt() -> None:
    out = family("Qwen-Qwen2.5-7B-Instruct").render([{"role": "user", "content": "Hi"}])
    assert out.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.")


def test_llama31() -> None:
    template = family("meta-llama-Llama-3.1-8B-Instruct", bos_token="<|begin_of_text|>")
    assert template.render(SIMPLE) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert template.tool_call_format is ToolCallFormat.LLAMA3
    out = template.render(TOOL_TURNS, tools=TOOLS, date_string="1 Jan 2025")
    assert "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 1 Jan 2025" in out
    assert 'Respond in the format {"name": function name, "parameters": dictionary of argument name' in out
    assert out.endswith(
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}'
        '<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n"22C"<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_mistral_nemo() -> None:
    template = family("mistralai-Mistral-Nemo-Instruct-2407", bos_token="<s>", eos_token="</s>")
    # Mistral puts the system prompt into the last user turn
    assert template.render(SIMPLE) == "<s>[INST]Hi[/INST]Hello!</s>[INST]Be brief.\n\nBye[/INST]"
    assert template.tool_call_format is ToolCallFormat.MISTRAL
    out = template.render(TOOL_TURNS[1:], tools=TOOLS)
    call_id = out.split('"id": "')[1][:9]
    assert len(call_id) == 9 and call_id.isalnum()  # the template demands 9 alphanumerics; we map ids
    assert out == (
        '<s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": '
        '"Get the weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, '
        '"required": ["city"]}}}][/AVAILABLE_TOOLS][INST]Weather in Paris?[/INST][TOOL_CALLS][{"name": '
        f'"get_weather", "arguments": {{"city": "Paris"}}, "id": "{call_id}"}}]</s>[TOOL_RESULTS]{{"content": 22C, '
        f'"call_id": "{call_id}"}}[/TOOL_RESULTS]')
    with pytest.raises(TemplateError, match="alternate user/assistant"):
        template.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_gemma2_merges_system_into_first_user_turn() -> None:
    template = family("google-gemma-2-2b-it", bos_token="<bos>")
    assert not template.supports_system_role
    assert template.render(SIMPLE) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    out = template.render(TOOL_TURNS, tools=TOOLS)  # tool turns alternate as user/model
    assert out.endswith('<start_of_turn>model\n{"name": "get_weather", "arguments": {"city": "Paris"}}<end_of_turn>'
                        "\n<start_of_turn>user\nResult of get_weather:\n22C<end_of_turn>\n<start_of_turn>model\n")


def test_phi35() -> None:
    template = family("microsoft-Phi-3.5-mini-instruct", eos_token="<|endoftext|>")
    assert template.render(SIMPLE) == ("<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>"
                                       "\n<|user|>\nBye<|end|>\n<|assistant|>\n")
    assert template.render(SIMPLE, add_generation_prompt=False).endswith("<|user|>\nBye<|end|>\n<|endoftext|>")


def test_deepseek_r1_thinking() -> None:
    template = family("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", bos_token="<｜begin▁of▁sentence｜>")
    assert template.thinking_markers == ("<think>", "</think>")
    thinking = template.render(SIMPLE, enable_thinking=True)
    assert thinking == ("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
                        "<｜User｜>Bye<｜Assistant｜><think>\n")
    plan = prepare_chat(template, SIMPLE, think=True)
    assert plan.prompt == thinking and plan.starts_in_thinking
    out = plan.parse("The user says bye.\nI should answer.\n</think>\n\nGoodbye!")
    assert (out.thinking, out.content) == ("The user says bye.\nI should answer.", "Goodbye!")
    plan = prepare_chat(template, SIMPLE, think=False)
    assert plan.prompt.endswith("<think>\n</think>") and not plan.starts_in_thinking
    history = SIMPLE[:2] + [{"role": "assistant", "content": "<think>hmm</think>Hello!"}, SIMPLE[3]]
    assert "hmm" not in template.render(history)  # the template drops earlier thinking


def test_qwen3_thinking_switch() -> None:
    template = family("Qwen-Qwen3-0.6B")
    assert template.render(SIMPLE[:2], enable_thinking=False).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    plan = prepare_chat(template, SIMPLE[:2])
    assert plan.prompt.endswith("<|im_start|>assistant\n") and not plan.starts_in_thinking
    out = plan.parse("<think>\nLet me think.\n</think>\n\nHi there!")
    assert (out.thinking, out.content) == ("Let me think.", "Hi there!")


def test_content_parts_and_ollama_shapes() -> None:
    template = family("Qwen-Qwen2.5-7B-Instruct")
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "World"}]}]
    assert "<|im_start|>user\nHello\nWorld<|im_end|>" in template.render(parts)
    ollama = [{"role": "user", "content": "Weather?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
              {"role": "tool", "tool_name": "get_weather", "content": "-3C"}]
    out = template.render(ollama, tools=TOOLS)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in out
    assert "<tool_response>\n-3C\n</tool_response>" in out
    with pytest.raises(TemplateError, match="image_url"):
        template.render([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    with pytest.raises(TemplateError, match="role"):
        template.render([{"content": "no role"}])
