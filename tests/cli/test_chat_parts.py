"""The parts under the REPL: parameter parsing, saved conversations (real files), host URLs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llamarun.cli.chat_params import parse_parameter, to_local_kwargs, validate_options
from llamarun.cli.conversations import Conversation, load_conversation, save_conversation
from llamarun.cli.ollama_client import normalize_host
from llamarun.errors import InvalidNameError, InvalidParameterError


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("temperature", ["0"], ("temperature", 0.0)),
    ("top_k", ["40"], ("top_k", 40)),
    ("max_tokens", ["-1"], ("num_predict", -1)),
    ("seed", ["42"], ("seed", 42)),
    ("stop", ["<|im_end|>", "END"], ("stop", ["<|im_end|>", "END"])),
    ("repeat_penalty", ["1.1"], ("repeat_penalty", 1.1)),
])
def test_parse_parameter(name, values, expected):
    assert parse_parameter(name, values) == expected


@pytest.mark.parametrize(("name", "values", "message"), [
    ("bogus", ["1"], "unknown parameter"),
    ("temperature", ["warm"], "temperature must be float"),
    ("temperature", ["nan"], "temperature must be float"),
    ("temperature", ["-1"], "between"),
    ("top_p", ["1.5"], "between"),
    ("top_k", ["1.5"], "top_k must be int"),
    ("num_predict", ["-2"], "num_predict must be"),
    ("num_predict", ["99999999999"], "num_predict must be"),
    ("temperature", [], "needs a value"),
    ("temperature", ["1", "2"], "takes one value"),
    ("num_ctx", ["8192"], "restart with --ctx"),
    ("stop", [""], "stop must be"),
])
def test_bad_parameters_are_named(name, values, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_parameter(name, values)


def test_options_become_library_keywords():
    assert to_local_kwargs({"num_predict": -1, "temperature": 0.5, "stop": ["x"]}) == {
        "max_tokens": None, "temperature": 0.5, "stop": ("x",)}
    assert to_local_kwargs({"num_predict": 7})["max_tokens"] == 7
    with pytest.raises(InvalidParameterError):
        validate_options({"top_k": "40"})
    with pytest.raises(InvalidParameterError):
        validate_options({"num_ctx": 10})


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLAMARUN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_conversation_round_trip(home: Path):
    conversation = Conversation("smollm2", "Be brief.", ({"role": "user", "content": "hi ✓"},
                                                         {"role": "assistant", "content": "hello"}),
                                {"temperature": 0.0, "stop": ["END"]})
    path = save_conversation("chat-1.2_x", conversation)
    assert path == home / "conversations" / "chat-1.2_x.json"
    assert load_conversation("chat-1.2_x") == Conversation("smollm2", "Be brief.", conversation.messages,
                                                           {"temperature": 0.0, "stop": ["END"]})
    save_conversation("chat-1.2_x.json", Conversation("other"))  # replaces it; .json is optional
    assert load_conversation("chat-1.2_x").model == "other"
    assert sorted(os.listdir(home / "conversations")) == ["chat-1.2_x.json"]  # no temp files left


@pytest.mark.parametrize("name", ["../up", "a/b", "/abs", ".hidden", "..", "", "x" * 65, "sp ace", "a\\b", "ü"])
def test_unsafe_names_are_refused_and_nothing_is_written(home: Path, tmp_path: Path, name: str):
    with pytest.raises(InvalidNameError):
        save_conversation(name, Conversation("m"))
    with pytest.raises(InvalidNameError):
        load_conversation(name)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_writes_never_follow_a_symlinked_folder(home: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    home.mkdir()
    (home / "conversations").symlink_to(outside)
    with pytest.raises(InvalidParameterError, match="symbolic link"):
        save_conversation("c", Conversation("m"))
    assert list(outside.iterdir()) == []


def test_a_file_link_is_replaced_not_written_through(home: Path, tmp_path: Path):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    (home / "conversations").mkdir(parents=True)
    (home / "conversations" / "c.json").symlink_to(target)
    save_conversation("c", Conversation("m"))
    assert target.read_text() == "keep"
    assert not (home / "conversations" / "c.json").is_symlink()


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ("[]", "not a llamarun conversation"),
    (json.dumps({"format": "llamarun.conversation", "messages": "x"}), "'messages' must be a list"),
    (json.dumps({"format": "llamarun.conversation", "messages": [{"role": "user", "content": 3}]}), "message 0"),
    (json.dumps({"format": "llamarun.conversation", "messages": [], "options": {"temperature": -5}}), "between"),
    (json.dumps({"format": "llamarun.conversation", "messages": [], "system": ["x"]}), "'system' must be"),
])
def test_bad_files_are_refused_with_a_reason(home: Path, content: str, message: str):
    (home / "conversations").mkdir(parents=True)
    (home / "conversations" / "bad.json").write_text(content)
    with pytest.raises(InvalidParameterError, match=message):
        load_conversation("bad")


def test_missing_conversation_lists_the_saved_ones(home: Path):
    save_conversation("one", Conversation("m"))
    with pytest.raises(InvalidParameterError, match=r"no saved conversation 'two' \(saved: one\)"):
        load_conversation("two")


@pytest.mark.parametrize(("text", "url"), [
    ("127.0.0.1", "http://127.0.0.1:11434"),
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:9000/", "http://localhost:9000"),
    ("http://example.com", "http://example.com:80"),
    ("https://example.com", "https://example.com:443"),
    ("[::1]:7000", "http://[::1]:7000"),
])
def test_host_urls(text: str, url: str):
    assert normalize_host(text) == url


@pytest.mark.parametrize("text", ["", "ftp://x", "http://", "host:notaport"])
def test_bad_host_urls(text: str):
    with pytest.raises(InvalidParameterError):
        normalize_host(text)
