"""Bounds on what a caller may ask the grammar layer to build or check."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

__all__ = ["GrammarLimits"]


@dataclass(frozen=True)
class GrammarLimits:
    """Limits applied to user GBNF and to JSON schemas before llama.cpp sees them.

    The defaults accept every real-world schema and grammar we know of while
    keeping llama.cpp's recursive grammar parser and stack builder far from
    trouble (llama.cpp#26600: 60,000 nested brackets crash llama-server).
    """

    max_grammar_bytes: int = 256 << 10  # the engine's own limit
    max_nesting: int = 100  # nested ( ) groups in a GBNF rule
    max_rules: int = 10_000  # named rules in a GBNF grammar
    max_chain_depth: int = 500  # longest chain of leftmost rule references
    max_repetition: int = 1_000  # m in x{m,n}, minItems, minLength
    max_schema_bytes: int = 256 << 10  # schema serialized as JSON
    max_schema_depth: int = 100  # nested JSON containers in a schema document
    max_schema_nodes: int = 20_000  # JSON values in a schema document
    max_pattern_chars: int = 1_000  # a "pattern" regular expression
    # nested repetitions in a pattern, multiplied out (((a{1,40}){1,40}){1,40} is 64,000):
    # llama.cpp's grammar parser refuses more than 2,000 (its MAX_REPETITION_THRESHOLD)
    max_repetition_product: int = 2_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"GrammarLimits.{name} must be a positive int, got {value!r}")
