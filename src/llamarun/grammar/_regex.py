"""A JSON-schema ``pattern`` (a regular expression) -> GBNF for a JSON string body.

The regex is parsed by Python's own regex parser, then translated node by node.
The grammar generates strings that match the whole pattern (a full match also
satisfies JSON Schema's unanchored search), written as JSON string content:
quote and backslash escaped, control characters left out unless common
(\\n, \\t, \\r).  Lookarounds, backreferences, flags and word boundaries are
not translatable and raise :class:`GrammarError`.
"""

from __future__ import annotations

import json
from typing import Any

try:  # Python 3.11+
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

from ..errors import GrammarError
from .gbnf import gbnf_literal
from .limits import GrammarLimits

__all__ = ["pattern_to_gbnf"]

_MAX_CODE = 0x10FFFF
_MAX_DEPTH = 50
_CATEGORIES: dict[Any, list[tuple[int, int]]] = {
    _c.CATEGORY_DIGIT: [(48, 57)],
    _c.CATEGORY_WORD: [(48, 57), (65, 90), (95, 95), (97, 122)],
    _c.CATEGORY_SPACE: [(9, 13), (32, 32)],
}
_NEGATED = {_c.CATEGORY_NOT_DIGIT: _c.CATEGORY_DIGIT, _c.CATEGORY_NOT_WORD: _c.CATEGORY_WORD,
            _c.CATEGORY_NOT_SPACE: _c.CATEGORY_SPACE}
# characters a JSON string may hold unescaped are everything but these
_NOT_RAW = [(0, 31), (34, 34), (92, 92), (127, 127)]
_ESCAPED = {34: '\\"', 92: "\\\\", 10: "\\n", 9: "\\t", 13: "\\r"}


def _fail(message: str) -> GrammarError:
    return GrammarError(f"unsupported JSON schema pattern: {message}", field="schema")


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, start = [], 0
    for lo, hi in _normalize(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CODE:
        out.append((start, _MAX_CODE))
    return out


def _subtract(ranges: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    keep = _complement(minus)
    out = []
    for lo, hi in _normalize(ranges):
        for klo, khi in keep:
            a, b = max(lo, klo), min(hi, khi)
            if a <= b:
                out.append((a, b))
    return out


def _contains(ranges: list[tuple[int, int]], code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _hex(code: int) -> str:
    return f"\\x{code:02X}" if code < 0x100 else (f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}")


def _char_set(ranges: list[tuple[int, int]]) -> str:
    """GBNF for one character of ``ranges``, written as JSON string content."""
    ranges = _normalize(ranges)
    raw = _subtract(ranges, _NOT_RAW)
    alts = []
    if raw:
        alts.append("[" + "".join(_hex(lo) if lo == hi else f"{_hex(lo)}-{_hex(hi)}" for lo, hi in raw) + "]")
    alts += [gbnf_literal(text) for code, text in _ESCAPED.items() if _contains(ranges, code)]
    if not alts:
        raise _fail("a character class matches no character that can be generated")
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _class_ranges(items: list[Any]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    negate = False
    for op, arg in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            ranges.append((arg, arg))
        elif op is _c.RANGE:
            ranges.append(arg)
        elif op is _c.CATEGORY and arg in _CATEGORIES:
            ranges += _CATEGORIES[arg]
        elif op is _c.CATEGORY and arg in _NEGATED:
            ranges += _complement(_CATEGORIES[_NEGATED[arg]])
        else:
            raise _fail(f"character class item {op} is not supported")
    return _complement(ranges) if negate else ranges


class _Translator:
    def __init__(self, limits: GrammarLimits) -> None:
        self.limits = limits
        self.scale = 1  # product of the repetition counts around the node being translated

    def sequence(self, items: Any, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise _fail(f"groups nested deeper than {_MAX_DEPTH} levels")
        parts = [self.node(op, arg, depth) for op, arg in items]
        return " ".join(p for p in parts if p) or '""'

    def node(self, op: Any, arg: Any, depth: int) -> str:
        if op is _c.LITERAL:
            return gbnf_literal(json.dumps(chr(arg), ensure_ascii=False)[1:-1])
        if op is _c.NOT_LITERAL:
            return _char_set(_complement([(arg, arg)]))
        if op is _c.ANY:
            return _char_set(_complement([(10, 10)]))
        if op is _c.IN:
            return _char_set(_class_ranges(arg))
        if op is _c.CATEGORY:
            return _char_set(_class_ranges([(op, arg)]))
        if op is _c.BRANCH:
            return "(" + " | ".join(self.sequence(alt, depth + 1) for alt in arg[1]) + ")"
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, body = arg
            if add_flags or del_flags:
                raise _fail("inline flags such as (?i) are not supported")
            return "(" + self.sequence(body, depth + 1) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            return self.repeat(*arg, depth=depth)
        if op is _c.AT:
            raise _fail("anchors and word boundaries are only supported as ^ at the start and $ at the end")
        raise _fail(f"{str(op).lower()} (lookarounds, backreferences, atomic groups) is not supported")

    def repeat(self, lo: int, hi: int, body: Any, *, depth: int) -> str:
        if lo > self.limits.max_repetition:
            raise _fail(f"a repetition of at least {lo} is more than the limit of {self.limits.max_repetition}")
        unbounded = hi is _c.MAXREPEAT or hi > self.limits.max_repetition
        outer = self.scale
        # llama.cpp expands x{m,n} into n copies (m when unbounded), nested repetitions multiply
        self.scale = outer * max(1, lo if unbounded else hi)
        if self.scale > self.limits.max_repetition_product:
            raise _fail(f"nested repetitions multiply out to {self.scale} copies, more than the "
                        f"{self.limits.max_repetition_product} llama.cpp's grammar parser accepts; "
                        "use smaller counts or fewer nested repetitions")
        try:
            inner = "(" + self.sequence(body, depth + 1) + ")"
        finally:
            self.scale = outer
        if unbounded:
            return f"{inner}*" if lo == 0 else (f"{inner}+" if lo == 1 else f"{inner}{{{lo},}}")
        if (lo, hi) == (0, 1):
            return f"{inner}?"
        return f"{inner}{{{lo}}}" if lo == hi else f"{inner}{{{lo},{hi}}}"


def _strip_anchors(items: list[Any]) -> list[Any]:
    starts = (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING)
    ends = (_c.AT_END, _c.AT_END_STRING)
    if items and items[0][0] is _c.AT and items[0][1] in starts:
        items = items[1:]
    if items and items[-1][0] is _c.AT and items[-1][1] in ends:
        items = items[:-1]
    return items


def pattern_to_gbnf(pattern: str, limits: GrammarLimits) -> str:
    """GBNF (a sequence, no surrounding quotes) for JSON string content fully matching ``pattern``."""
    if not isinstance(pattern, str):
        raise GrammarError("JSON schema pattern must be a string", field="schema")
    if len(pattern) > limits.max_pattern_chars:
        raise GrammarError(f"JSON schema pattern of {len(pattern)} characters is longer than the limit of "
                           f"{limits.max_pattern_chars}", field="schema")
    try:
        parsed = _p.parse(pattern)
    except RecursionError:
        raise _fail("groups nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - re.error and friends: an invalid regex
        raise GrammarError(f"invalid JSON schema pattern {pattern[:80]!r}: {exc}", field="schema") from None
    items = _strip_anchors(list(parsed))
    return _Translator(limits).sequence(items, 0)
