"""check_gbnf: abuse is rejected quickly with a typed error; real grammars pass; llama.cpp agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamarun.engine import Model, SamplerChain
from llamarun.errors import GrammarError, InvalidParameterError
from llamarun.grammar import GrammarLimits, check_gbnf, choice_grammar, gbnf_char_class, gbnf_literal
from llamarun.types import SamplingParams

from gbnf_regex import gbnf_to_regex

JSON_GBNF = r'''  # llama.cpp's grammars/json.gbnf
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
'''


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path: Path):
    with Model(tiny_model_path) as model:
        yield model


def test_real_grammars_pass() -> None:
    check_gbnf(JSON_GBNF)
    check_gbnf('root ::= "yes" | "no"')
    check_gbnf("root ::= [a-z]+ ( \" \" [a-z]+ ){0,5}\n# comment\n")
    check_gbnf('root ::= <[42]> "x" !<[7]>')


def test_sixty_thousand_nested_brackets_rejected() -> None:
    grammar = "root ::= " + "(" * 60_000 + '"a"' + ")" * 60_000
    with pytest.raises(GrammarError, match="nested deeper than 100"):
        check_gbnf(grammar)


def test_sixty_thousand_unclosed_brackets_rejected() -> None:
    with pytest.raises(GrammarError, match="nested deeper"):
        check_gbnf("root ::= " + "(" * 60_000)


def test_long_rule_chain_rejected() -> None:
    chain = "".join(f"r{i} ::= r{i + 1}\n" for i in range(2_000)) + 'r2000 ::= "a"\nroot ::= r0\n'
    with pytest.raises(GrammarError, match="deeper than 500"):
        check_gbnf(chain)


def test_oversized_grammar_rejected() -> None:
    with pytest.raises(GrammarError, match="larger than the limit"):
        check_gbnf('root ::= "' + "a" * 300_000 + '"')


@pytest.mark.parametrize(
    ("grammar", "message"),
    [
        ('x ::= "a"', "needs a 'root' rule"),
        ("root ::= missing", "undefined rule 'missing'"),
        ('root ::= root "a"', "left-recursive"),
        ('root ::= a\na ::= "x"? root', "left-recursive"),
        ('root ::= "a', "unterminated string"),
        ("root ::= [a-z", "unterminated character class"),
        ('root ::= "\\q"', "unknown escape"),
        ('root ::= ("a"', "missing '\\)'"),
        ('root ::= "a")', "unexpected '\\)'"),
        ("root ::= *", "no preceding item"),
        ('root ::= "a"{5000}', "limit of 1000"),
        ('root ::= "a"{3,2}', "below its minimum"),
        ('root ::= "a"{99999999999}', "too large"),
        ('root "a"', "expecting '::='"),
        ("::= x", "expecting a rule name"),
        ('root ::= "a\x00"', "NUL"),
        ("", "needs a 'root' rule"),
    ],
)
def test_invalid_grammars_named(grammar: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message) as info:
        check_gbnf(grammar)
    assert isinstance(info.value, InvalidParameterError) and info.value.http_status == 400


def test_not_a_string() -> None:
    with pytest.raises(GrammarError):
        check_gbnf(b"root ::= x")  # type: ignore[arg-type]


def test_limits_are_configurable() -> None:
    check_gbnf("root ::= " + "(" * 150 + '"a"' + ")" * 150, limits=GrammarLimits(max_nesting=200))
    with pytest.raises(InvalidParameterError):
        GrammarLimits(max_nesting=0)


def test_literal_and_class_round_trip() -> None:
    text = 'say "hi"\\ \n\ttab \x01 é ✓'
    grammar = f"root ::= {gbnf_literal(text)}"
    check_gbnf(grammar)
    assert gbnf_to_regex(grammar).fullmatch(text)
    cls = gbnf_char_class('"\\]-^', (("a", "c"),), negate=True)
    pattern = gbnf_to_regex(f"root ::= {cls}")
    assert pattern.fullmatch("x") and not any(pattern.fullmatch(c) for c in '"\\]-^abc')


def test_choice_grammar() -> None:
    grammar = choice_grammar(["yes", "no"])
    check_gbnf(grammar)
    pattern = gbnf_to_regex(grammar)
    assert pattern.fullmatch("yes") and pattern.fullmatch("no") and not pattern.fullmatch("yesno")
    with pytest.raises(GrammarError):
        choice_grammar([])


def test_llama_cpp_accepts_what_we_accept(tiny_model: Model) -> None:
    for grammar in (JSON_GBNF, 'root ::= "yes" | "no"', "root ::= " + "(" * 100 + '"a"' + ")" * 100):
        check_gbnf(grammar)
        SamplerChain(tiny_model, SamplingParams(grammar=grammar)).close()


def test_llama_cpp_rejects_invalid_grammar_with_typed_error(tiny_model: Model) -> None:
    with pytest.raises(GrammarError):
        SamplerChain(tiny_model, SamplingParams(grammar="root ::= missing"))
