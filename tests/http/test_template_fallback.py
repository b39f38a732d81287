"""A GGUF without a chat template is chatted with the built-in template of the family whose turn markers
its vocabulary has (never ChatML's markers as plain text in a Gemma vocabulary); ``show`` names the
choice and why; ``--template`` and ``template_name`` override it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from llamarun.chat import ChatTemplate, choose_builtin
from llamarun.engine import Model
from llamarun.store import ModelStore
from serve_helpers import ROOT, Server, start_server
from tinymodel import write_tiny_gguf

pytestmark = pytest.mark.timeout(300)

# family -> (control tokens: BOS first, EOS third; the built-in template; its markers in a prompt)
FAMILIES = {
    "gemma": (["<bos>", "<start_of_turn>", "<eos>", "<end_of_turn>"], "gemma", ["<start_of_turn>", "<end_of_turn>"]),
    "llama3": (["<|begin_of_text|>", "<|start_header_id|>", "<|end_of_text|>", "<|end_header_id|>", "<|eot_id|>"],
               "llama3", ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "chatml": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "chatml", ["<|im_start|>", "<|im_end|>"]),
    "mistral": (["<s>", "[INST]", "</s>", "[/INST]"], "mistral-v3", ["[INST]", "[/INST]"]),
    "phi3": (["<s>", "<|user|>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>"], "phi3",
             ["<|user|>", "<|assistant|>", "<|end|>"]),
}
ALL_MARKERS = {m for _, _, markers in FAMILIES.values() for m in markers}
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("families")
    return {family: write_tiny_gguf(home / f"{family}.gguf", chat_template=None, specials=specials)
            for family, (specials, _, _) in FAMILIES.items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, paths: dict[str, Path]) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("families-store")
    store = ModelStore(home)
    for family, path in paths.items():
        store.create(family, path)
    server = start_server(home, "--ctx", "512", "--parallel", "1")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_vocabulary_chooses_the_template(paths: dict[str, Path], family: str) -> None:
    _, name, markers = FAMILIES[family]
    with Model(paths[family]) as model:
        template = ChatTemplate.for_model(model)
        prompt = template.render(HELLO)
        tokens = model.tokenize(prompt, add_special=False, parse_special=True)
        specials = {model.vocab.piece(t, special=True).decode() for t in tokens if model.vocab.is_control(t)}
    assert template.builtin_name == name and template.choice.name == name
    assert markers[0] in template.choice.reason
    assert markers[0] in prompt and "hello there" in prompt
    assert not (ALL_MARKERS - set(markers)) & {m for m in ALL_MARKERS if m in prompt}  # no other family's
    assert markers[0] in specials  # the markers are the vocabulary's tokens, not text


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_in_its_own_format_and_show_names_it(server: Server, paths: dict[str, Path], family: str) -> None:
    specials, name, markers = FAMILIES[family]
    client = ollama.Client(host=server.url, timeout=120)
    reply = client.chat(model=family, messages=HELLO, options={"num_predict": 24, "temperature": 0, "seed": 1})
    with Model(paths[family]) as model:
        expected = model.tokenize(ChatTemplate.builtin(name).render(HELLO), add_special=False, parse_special=True)
    assert reply.prompt_eval_count == len(expected)  # markers read as single special tokens
    foreign = ALL_MARKERS - set(specials)
    assert not [m for m in foreign if m in reply.message.content]
    shown = httpx.post(f"{server.url}/api/show", json={"model": family}, timeout=60).json()
    assert shown["template_choice"]["name"] == name and markers[0] in shown["template_choice"]["reason"]


def test_cli_show_names_the_choice(server: Server) -> None:
    env = {"LLAMARUN_HOME": str(server.home), "LLAMARUN_CONFIG": str(server.home / "config.toml")}
    import os

    run = subprocess.run([sys.executable, "-m", "llamarun", "show", "gemma"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Chat template: 'gemma'" in run.stdout and "<start_of_turn>" in run.stdout
    run = subprocess.run([sys.executable, "-m", "llamarun", "show", "llama3", "--json"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert json.loads(run.stdout)["template_choice"]["name"] == "llama3"


def test_template_name_overrides_per_request(server: Server, paths: dict[str, Path]) -> None:
    r = httpx.post(f"{server.url}/api/chat", json={"model": "gemma", "messages": HELLO, "stream": False,
                                                   "template_name": "chatml", "options": {"num_predict": 1}},
                   timeout=120)
    assert r.status_code == 200, r.text
    with Model(paths["gemma"]) as model:  # ChatML's markers are plain text in Gemma's vocabulary
        expected = model.tokenize(ChatTemplate.builtin("chatml").render(HELLO), add_special=False,
                                  parse_special=False)
    assert r.json()["prompt_eval_count"] == len(expected)
    r = httpx.post(f"{server.url}/api/chat", json={"model": "gemma", "messages": HELLO, "stream": False,
                                                   "template_name": "no-such-template"}, timeout=60)
    assert r.status_code == 400 and "no-such-template" in r.json()["error"]


def test_template_name_on_the_openai_chat_endpoint(server: Server, paths: dict[str, Path]) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="gemma", messages=HELLO, max_tokens=1,
                                           extra_body={"template_name": "chatml"})
    with Model(paths["gemma"]) as model:
        expected = model.tokenize(ChatTemplate.builtin("chatml").render(HELLO), add_special=False,
                                  parse_special=False)
    assert reply.usage.prompt_tokens == len(expected)
    with pytest.raises(openai.BadRequestError, match="no-such-template"):
        client.chat.completions.create(model="gemma", messages=HELLO, max_tokens=1,
                                       extra_body={"template_name": "no-such-template"})


def test_serve_template_flag(tmp_path: Path, paths: dict[str, Path]) -> None:
    ModelStore(tmp_path).create("gemma", paths["gemma"])
    server = start_server(tmp_path, "--ctx", "256", "--template", "llama3")
    try:
        client = ollama.Client(host=server.url, timeout=120)
        reply = client.chat(model="gemma", messages=HELLO, options={"num_predict": 1})
        with Model(paths["gemma"]) as model:
            expected = model.tokenize(ChatTemplate.builtin("llama3").render(HELLO), add_special=False)
        assert reply.prompt_eval_count == len(expected)
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="unknown built-in chat template"):
        start_server(tmp_path, "--template", "nope")


def test_no_known_markers_is_chatml_and_says_so() -> None:
    choice = choose_builtin({"<s>", "</s>"})
    assert choice.name == "chatml" and "none of the turn markers" in choice.reason
    assert choose_builtin({"[INST]", "[/INST]"}, pre_tokenizer="tekken").name == "mistral-v3-tekken"
