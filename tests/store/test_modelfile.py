"""The Modelfile parser (Ollama's format) with ordinary and hostile input, and models created from one."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamarun.errors import ModelfileError, ModelNotFoundError, TemplateError
from llamarun.store import ModelDefaults, ModelStore, parse_modelfile

FULL = '''# a comment
FROM smollm2
parameter temperature 0.2
PARAMETER top_k 20
PARAMETER stop "<|im_end|>"
PARAMETER stop END
PARAMETER num_predict 64
SYSTEM """You are
a terse assistant."""
TEMPLATE chatml
MESSAGE user Hi
MESSAGE assistant "Hello \\"friend\\""
LICENSE """MIT
text"""
'''


def test_parses_every_command() -> None:
    mf = parse_modelfile(FULL)
    d = mf.defaults
    assert mf.from_ == "smollm2"
    assert d.parameters == {"temperature": 0.2, "top_k": 20, "stop": ["<|im_end|>", "END"], "num_predict": 64}
    assert d.system == "You are\na terse assistant." and d.template == "chatml"
    assert d.messages == ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": 'Hello "friend"'})
    assert d.license == ("MIT\ntext",)


def test_modelfile_text_round_trips() -> None:
    mf = parse_modelfile(FULL)
    again = parse_modelfile(mf.defaults.modelfile(mf.from_))
    assert again == mf
    assert 'stop                           "END"' in mf.defaults.parameters_text()


@pytest.mark.parametrize(("text", "line", "match"), [
    ("FROM x\nPARAMETER temprature 0.5\n", 2, "unknown parameter 'temprature'"),
    ("FROM x\nPARAMETER top_k many\n", 2, "top_k must be an integer"),
    ("FROM x\nPARAMETER temperature nan\n", 2, "between"),
    ("FROM x\nPARAMETER temperature 1e400\n", 2, "between"),
    ("FROM x\nPARAMETER top_p 2\n", 2, "between 0 and 1"),
    ("FROM x\nPARAMETER seed\n", 2, "needs a name and a value"),
    ("FROM x\n\nFROBNICATE y\n", 3, "unknown command 'FROBNICATE'"),
    ("FROM x\nADAPTER ./lora.gguf\n", 2, "ADAPTER"),
    ("FROM x\nMESSAGE tool hi\n", 2, "role must be one of"),
    ('FROM x\nSYSTEM """never closed\nmore\n', 2, "unterminated"),
    ('FROM x\nSYSTEM """a""" trailing\n', 2, "after the closing"),
    ('FROM x\nSYSTEM "open\n', 2, "malformed"),
    ("FROM x\nFROM y\n", 2, "second FROM"),
    ("PARAMETER top_k 1\n", 0, "no FROM"),
    ("FROM x\nPARAMETER stop \"\"\n", 2, "needs a value"),
    ("FROM x\nPARAMETER num_ctx 1\n", 2, "between 16"),
])
def test_bad_lines_name_their_line(text: str, line: int, match: str) -> None:
    with pytest.raises(ModelfileError, match=match) as info:
        parse_modelfile(text)
    assert info.value.line == line
    if line:
        assert str(info.value).startswith(f"Modelfile line {line}:")


@pytest.mark.parametrize("template", [
    "{{ .System }}<|user|>{{ .Prompt }}",
    "{{- if .System }}{{ .System }}{{ end }}",
    "{{ range .Messages }}{{ .Content }}{{ end }}",
    '{{- $last := len .Messages }}',
])
def test_go_templates_are_refused_saying_only_jinja(template: str) -> None:
    with pytest.raises(ModelfileError, match="Go template.*only Jinja") as info:
        parse_modelfile(f'FROM x\nTEMPLATE """{template}"""\n')
    assert info.value.line == 2
    with pytest.raises(ModelfileError, match="Go template"):
        ModelDefaults.build(template=template)


def test_huge_and_binary_input_is_refused() -> None:
    with pytest.raises(ModelfileError, match="more than the limit"):
        parse_modelfile("FROM x\nSYSTEM " + "a" * (300 * 1024))
    with pytest.raises(ModelfileError, match="NUL"):
        parse_modelfile("FROM x\x00\n")
    with pytest.raises(ModelfileError, match="at most 16 stop"):
        parse_modelfile("FROM x\n" + "".join(f"PARAMETER stop s{i}\n" for i in range(17)))
    with pytest.raises(ModelfileError, match="more than 256 MESSAGE"):
        parse_modelfile("FROM x\n" + "MESSAGE user hi\n" * 257)
    with pytest.raises(ModelfileError, match="must be text"):
        parse_modelfile(b"FROM x")  # type: ignore[arg-type]


def test_create_fields_are_checked_like_a_modelfile() -> None:
    with pytest.raises(ModelfileError, match="unknown parameter 'bogus'"):
        ModelDefaults.build(parameters={"bogus": 1})
    with pytest.raises(ModelfileError, match="integer"):
        ModelDefaults.build(parameters={"num_predict": 1.5})
    with pytest.raises(ModelfileError, match="integer"):
        ModelDefaults.build(parameters={"top_k": True})
    with pytest.raises(ModelfileError, match="stop"):
        ModelDefaults.build(parameters={"stop": [1, 2]})
    with pytest.raises(ModelfileError, match="role"):
        ModelDefaults.build(messages=[{"role": "wizard", "content": "x"}])
    d = ModelDefaults.build(parameters={"stop": "x", "num_predict": 4.0}, system="s")
    assert d.parameters == {"stop": ["x"], "num_predict": 4}


def test_jinja_template_checked_in_the_sandbox() -> None:
    from llamarun.chat.override import check_modelfile_template

    check_modelfile_template("chatml")
    check_modelfile_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(TemplateError, match="does not compile as Jinja"):
        check_modelfile_template("{% for m in messages %}")
    with pytest.raises(TemplateError, match="unsafe"):  # compiles, but the sandbox refuses it at render time
        from llamarun.chat import ChatTemplate
        from llamarun.chat.override import modelfile_template

        bad = modelfile_template("{{ ''.__class__.__mro__ }}", ChatTemplate.builtin("chatml"))
        bad.render([{"role": "user", "content": "x"}])


def test_conversation_adds_system_and_examples() -> None:
    d = ModelDefaults(system="S", messages=({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}))
    user = [{"role": "user", "content": "q"}]
    assert d.conversation(user) == [{"role": "system", "content": "S"}, *d.messages, *user]
    own = [{"role": "system", "content": "mine"}, *user]
    assert d.conversation(own) == [own[0], *d.messages, *user]


def test_create_from_stored_model_and_from_path(store: ModelStore, tiny_model_path: Path, tmp_path: Path) -> None:
    store.create("tiny", tiny_model_path)
    a = store.create_from_modelfile("a", "FROM tiny\nPARAMETER num_predict 3\nSYSTEM hi\n")
    assert a.defaults.parameters == {"num_predict": 3} and a.defaults.system == "hi"
    assert a.digest == store.get("tiny").digest and not store.get("tiny").defaults
    b = store.create_from_modelfile("b", "FROM a\nPARAMETER temperature 0.5\n")  # inherits, parameters merge
    assert b.defaults.parameters == {"num_predict": 3, "temperature": 0.5} and b.defaults.system == "hi"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "tiny.gguf").write_bytes(tiny_model_path.read_bytes())
    c = store.create_from_modelfile("c", "FROM ./tiny.gguf\nSYSTEM x\n", base_dir=tmp_path / "m")
    assert c.digest == a.digest and c.defaults.system == "x"
    assert "FROM " in c.modelfile() and 'SYSTEM "x"' in c.modelfile()
    assert store.show("c").to_json()["modelfile"]["system"] == "x"
    with pytest.raises(ModelNotFoundError, match="pull it first"):
        store.create_from_modelfile("d", "FROM nothere\n")
    with pytest.raises(ModelfileError, match="does not exist"):
        store.create_from_modelfile("d", "FROM ./missing.gguf\n", base_dir=tmp_path)
