"""Structured output: GBNF grammars for llama.cpp's grammar sampler.

- :func:`check_gbnf` validates a caller's GBNF (size, nesting, rules) before
  llama.cpp parses it; :func:`json_schema_to_gbnf` turns a JSON schema into
  GBNF; :func:`json_object_grammar` is JSON mode; :func:`choice_grammar` allows
  exactly one of a few strings; :func:`response_format_grammar` maps Ollama's
  ``format`` and OpenAI's ``response_format`` to a grammar.
- :class:`GrammarBuilder` composes several schemas into one grammar (used for
  tool calls).  Every failure is a :class:`~llamarun.errors.GrammarError` (400).
"""

from .builtin import choice_grammar, json_object_grammar, response_format_grammar
from .gbnf import check_gbnf, gbnf_char_class, gbnf_literal
from .limits import GrammarLimits
from .schema import GrammarBuilder, check_schema_size, json_schema_to_gbnf, load_schema

__all__ = [
    "GrammarBuilder",
    "GrammarLimits",
    "check_gbnf",
    "check_schema_size",
    "choice_grammar",
    "gbnf_char_class",
    "gbnf_literal",
    "json_object_grammar",
    "json_schema_to_gbnf",
    "load_schema",
    "response_format_grammar",
]
