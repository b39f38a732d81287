"""JSON Schema -> GBNF for scalars: enum, string (length, pattern, format), numbers, booleans, null."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import _numbers
from ._regex import pattern_to_gbnf
from ._schema_base import RuleSet, count_keyword, fail, literal_value

__all__ = ["FORMATS", "ScalarRules"]

logger = logging.getLogger(__name__)

_DATE = '[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )'
_TIME = ('( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
         '( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )')
# string formats that are enforced: format name -> GBNF for the string's content
FORMATS: Mapping[str, str] = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f'{_DATE} "T" {_TIME}',
    "uuid": ' "-" '.join(f"[0-9a-f]{{{n}}}" for n in (8, 4, 4, 4, 12)),
    "email": '[a-zA-Z0-9._+-]{1,64} "@" [a-zA-Z0-9-]{1,63} ( "." [a-zA-Z0-9-]{1,63} )* "." [a-zA-Z]{2,24}',
    "ipv4": ' "." '.join(['( "25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9]? [0-9] )'] * 4),
    "uri": '[a-zA-Z] [a-zA-Z0-9+.-]{0,15} ":" [a-zA-Z0-9/?#@!$&()*+,;=:._~%-]{1,200}',
}


class ScalarRules(RuleSet):
    """Rules for ``enum`` and for the types string, integer, number, boolean and null."""

    def _enum(self, values: Any, hint: str, path: str) -> str:
        if not isinstance(values, list) or not values:
            raise fail(f"{path}/enum", "must be a non-empty list")
        self.primitive("space")
        alts = " | ".join(dict.fromkeys(literal_value(v) for v in values))
        return self.rule(hint, f"({alts}) space")

    def _string(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        self.primitive("space")
        if "pattern" in schema:
            body = pattern_to_gbnf(schema["pattern"], self.limits)
            return self.rule(hint, f'"\\"" {self.rule(f"{hint}-pattern", body)} "\\"" space')
        fmt = schema.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise fail(f"{path}/format", f"must be a string, not {type(fmt).__name__}")
        if fmt in FORMATS:
            return self.rule(hint, f'"\\"" {self.rule(str(fmt), FORMATS[fmt])} "\\"" space')
        if fmt is not None:
            logger.debug("JSON schema format %r is not enforced", fmt)
        lo = count_keyword(schema, "minLength", path, 0) or 0
        hi = count_keyword(schema, "maxLength", path, None)
        if lo == 0 and hi is None:
            return self.primitive("string")
        if hi is not None and hi < lo:
            raise fail(path, f"maxLength {hi} is below minLength {lo}")
        if lo > self.limits.max_repetition:
            raise fail(f"{path}/minLength", f"{lo} is more than the limit of {self.limits.max_repetition}")
        if hi is not None and hi > self.limits.max_repetition:
            hi = None
        char = self.primitive("char")
        count = f"{{{lo},}}" if hi is None else (f"{{{lo}}}" if hi == lo else f"{{{lo},{hi}}}")
        return self.rule(hint, f'"\\"" {char}{count} "\\"" space')

    def _integer(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        if schema.get("multipleOf", 1) != 1:
            raise fail(f"{path}/multipleOf", "the keyword 'multipleOf' is not supported for constrained output")
        self.primitive("space")
        body = _numbers.integer_rule(dict(schema))
        return self.primitive("integer") if body is None else self.rule(hint, body)

    def _number(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        if "multipleOf" in schema:
            raise fail(f"{path}/multipleOf", "the keyword 'multipleOf' is not supported for constrained output")
        self.primitive("space")
        body = _numbers.number_rule(dict(schema))
        return self.primitive("number") if body is None else self.rule(hint, body)

    def _boolean(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        return self.primitive("boolean")

    def _null(self, schema: Mapping[str, Any], hint: str, path: str) -> str:
        return self.primitive("null")
