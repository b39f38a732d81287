"""Hostile and runaway chat templates fail with TemplateError, quickly and without side effects."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from llamarun.chat import ChatTemplate, RenderLimits
from llamarun.errors import InvalidParameterError, TemplateError

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ namespace(a=1)._Namespace__attrs }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ raise_exception.__globals__ }}",
    "{{ raise_exception.__code__ }}",
    "{{ strftime_now.__module__ }}",
    "{{ raise_exception.func_globals }}",
    "{{ dict.mro() }}",
    "{{ range.__self__ }}",
    "{{ ''.join.__self__ }}",
    "{{ messages.__class__ }}",
    "{{ messages[0].items.__self__ }}",
    "{{ '{0.__class__}'.format(messages) }}",
    "{{ messages.append({'role': 'x'}) }}",
    "{{ messages.pop() }}",
    "{{ messages[0].update({'role': 'x'}) }}",
    "{% for m in messages %}{{ loop.__class__ }}{% endfor %}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os }}",
    "{% extends 'base.html' %}",
    "{{ messages|attr('__class__') }}",
    "{{ (messages|map(attribute='__class__'))|list }}",
]

BOMBS = [
    "{{ 'a' * 1000000000 }}",
    "{{ ['a'] * 1000000000 }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'|indent(1000000000) }}",
    "{{ '%s'|format('x')|center(1000000000) }}",
    "{{ [1]|batch(1000000000, 'x')|list }}",
    "{{ [1]|slice(1000000000)|list }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ 10 ** 10 ** 10 }}",
    "{{ 99999999999999999999 ** 99999 }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "{{ ('a' * 4000)|replace('a', 'b' * 4000) }}",
    "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
]

RUNAWAY = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 30000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
    "{% set ns = namespace(i=0) %}{% for a in range(100000) %}{% for b in range(100000) %}"
    "{% set ns.i = ns.i + 1 %}{% endfor %}{% endfor %}",
]


def render(source: str, limits: RenderLimits | None = None) -> str:
    return ChatTemplate(source, trusted=True, limits=limits).render(MESSAGES)


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_templates_raise(source: str) -> None:
    messages = copy.deepcopy(MESSAGES)
    with pytest.raises(TemplateError) as info:
        ChatTemplate(source, trusted=True).render(messages)
    assert isinstance(info.value, InvalidParameterError) and info.value.http_status == 400
    assert messages == MESSAGES  # nothing the caller passed was changed


def test_no_side_effect(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    for source in (f"{{{{ cycler.__init__.__globals__.os.system('touch {target}') }}}}",
                   f"{{{{ lipsum.__globals__.os.system('touch {target}') }}}}",
                   f"{{{{ self.__init__.__globals__.__builtins__.open('{target}', 'w') }}}}"):
        with pytest.raises(TemplateError):
            render(source)
    assert not target.exists()


@pytest.mark.parametrize("source", BOMBS)
def test_memory_and_cpu_bombs_raise(source: str) -> None:
    with pytest.raises(TemplateError):
        render(source)


@pytest.mark.parametrize("source", RUNAWAY)
def test_runaway_loops_are_stopped_by_the_step_bound(source: str) -> None:
    with pytest.raises(TemplateError, match="steps|output|recurs|value of more"):
        render(source, RenderLimits(max_steps=50_000))


def test_runaway_loop_is_stopped_by_the_deadline() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        render(RUNAWAY[1], RenderLimits(max_seconds=0.05, max_steps=10**12))


def test_output_size_cap() -> None:
    with pytest.raises(TemplateError, match="output exceeded 1000"):
        render("{% for i in range(5000) %}x{% endfor %}", RenderLimits(max_output_chars=1000))
    assert render("{% for i in range(500) %}x{% endfor %}", RenderLimits(max_output_chars=1000)) == "x" * 500


def test_request_templates_are_never_rendered() -> None:
    with pytest.raises(TemplateError, match="only from model files"):
        ChatTemplate("{{ messages[0].content }}")
    with pytest.raises(TemplateError, match="only from model files"):
        ChatTemplate("{{ messages[0].content }}", trusted=False)
    with pytest.raises(TemplateError, match="unknown built-in"):
        ChatTemplate.builtin("{{ messages[0].content }}")


def test_oversized_source_rejected() -> None:
    with pytest.raises(TemplateError, match="larger than the limit"):
        ChatTemplate("x" * 2_000_000, trusted=True)


def test_deeply_nested_source_falls_back_instead_of_crashing() -> None:
    template = ChatTemplate("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", trusted=True)
    assert template.is_builtin and template.builtin_name == "chatml"


def test_template_errors_become_template_error() -> None:
    with pytest.raises(TemplateError, match="Only user and assistant"):
        render("{{ raise_exception('Only user and assistant roles') }}")
    with pytest.raises(TemplateError, match="failed to render"):
        render("{{ messages[0].content + 1 }}")
    with pytest.raises(TemplateError, match="cannot be overridden"):
        ChatTemplate("{{ bos_token }}", trusted=True).render(MESSAGES, bos_token="evil")


def test_helpers_real_templates_use() -> None:
    source = ("{{ bos_token }}{% for m in messages %}{% if loop.index0 > 5 %}{% break %}{% endif %}"
              "{% generation %}{{ m.role }}:{{ m.content }};{% endgeneration %}{% endfor %}"
              "{{ {'a': '<b>'}|tojson }}{{ [1]|tojson(indent=2) }}|{{ strftime_now('%Y')|length }}"
              "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}{{ x }}")
    out = ChatTemplate(source, trusted=True, bos_token="<s>", eos_token="</s>").render(MESSAGES, x="!")
    assert out == '<s>system:Be brief.;user:Hi;{"a": "<b>"}[\n  1\n]|4></s>!'
    big = ChatTemplate("{{ 1712345678|string }} {{ 10000000000|abs }}", trusted=True).render(MESSAGES)
    assert big == "1712345678 10000000000"


def test_render_limits_validated() -> None:
    with pytest.raises(InvalidParameterError):
        RenderLimits(max_seconds=0)
    with pytest.raises(InvalidParameterError):
        RenderLimits(max_steps=0)
