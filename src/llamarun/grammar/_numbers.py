"""GBNF for JSON numbers within bounds (integers exactly; decimals conservatively).

Every grammar here generates only values inside the bounds: a decimal bound
that is not an integer is rounded inwards, which loses a sliver of valid
values but never admits an invalid one.
"""

from __future__ import annotations

import math

from ..errors import GrammarError

__all__ = ["integer_rule", "number_rule"]

_MAX_DIGITS = 16  # like llama.cpp: integers of up to 16 digits when unbounded
_FRACTION = '("." [0-9]{1,16})?'
_ZERO_FRACTION = '("." "0"{1,16})?'
_NONZERO_FRACTION = '"." [0-9]{0,15} [1-9]'


def _same_length(a: str, b: str) -> str:
    """Digit strings of len(a) == len(b) between a and b inclusive (a <= b)."""
    if a == b:
        return f'"{a}"'
    i = 0
    while a[i] == b[i]:
        i += 1
    prefix = f'"{a[:i]}" ' if i else ""
    da, db, rest_a, rest_b, n = int(a[i]), int(b[i]), a[i + 1:], b[i + 1:], len(a) - i - 1
    any_rest = f" [0-9]{{{n}}}" if n else ""
    if rest_a == "0" * n and rest_b == "9" * n:
        return f"{prefix}[{da}-{db}]{any_rest}"
    alts = [f'"{da}"' + (f" ({_same_length(rest_a, '9' * n)})" if n else "")]
    if db - da >= 2:
        alts.append(f"[{da + 1}-{db - 1}]{any_rest}")
    alts.append(f'"{db}"' + (f" ({_same_length('0' * n, rest_b)})" if n else ""))
    return f"{prefix}({' | '.join(alts)})"


def _digits(lo: int, hi: int | None) -> str:
    """Decimal integers (no sign, no leading zeros) in [lo, hi]; hi None = unbounded."""
    alts: list[str] = []
    top = len(str(hi)) if hi is not None else len(str(lo))
    for length in range(len(str(lo)), top + 1):
        a = max(lo, 10 ** (length - 1) if length > 1 else 0)
        b = 10**length - 1 if hi is None else min(hi, 10**length - 1)
        if a <= b:
            alts.append(_same_length(str(a).zfill(length), str(b)))
    if hi is None and len(str(lo)) < _MAX_DIGITS:
        alts.append(f"[1-9] [0-9]{{{len(str(lo))},{_MAX_DIGITS - 1}}}")
    return "(" + " | ".join(alts) + ")" if len(alts) > 1 else alts[0]


def _bound(schema: dict, key: str, exclusive_key: str) -> tuple[float | None, bool]:
    value, strict = schema.get(key), False
    exclusive = schema.get(exclusive_key)
    if isinstance(exclusive, bool):  # draft 4: a flag on minimum/maximum
        strict = exclusive and value is not None
    elif exclusive is not None:
        if value is None or (exclusive >= value if key == "minimum" else exclusive <= value):
            value, strict = exclusive, True
    for v in (value,):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise GrammarError(f"JSON schema {key}/{exclusive_key} must be finite numbers", field="schema")
    return value, strict


def integer_rule(schema: dict) -> str | None:
    """A GBNF body for an integer within the schema's bounds, or None when unbounded."""
    lo_f, lo_strict = _bound(schema, "minimum", "exclusiveMinimum")
    hi_f, hi_strict = _bound(schema, "maximum", "exclusiveMaximum")
    if lo_f is None and hi_f is None:
        return None
    lo = None if lo_f is None else (math.floor(lo_f) + 1 if lo_strict else math.ceil(lo_f))
    hi = None if hi_f is None else (math.ceil(hi_f) - 1 if hi_strict else math.floor(hi_f))
    if lo is not None and hi is not None and lo > hi:
        raise GrammarError(f"no integer lies between the schema's bounds {lo_f} and {hi_f}", field="schema")
    alts = []
    if hi is None or hi >= 0:  # non-negative part
        alts.append(_digits(max(lo or 0, 0), hi))
    if lo is None or lo < 0:  # negative part: "-" then magnitudes in [max(1, -hi), -lo]
        alts.append('"-" ' + _digits(max(1, -hi if hi is not None else 1), None if lo is None else -lo))
    return "(" + " | ".join(alts) + ") space"


def _magnitudes(lo: int, lo_strict: bool, hi: int | None, hi_strict: bool) -> list[str]:
    """Unsigned decimals m with lo <(=) m <(=) hi, lo >= 0 an int, hi an int or None."""
    alts: list[str] = []
    first = lo + 1 if lo_strict else lo
    last_any = None if hi is None else hi - 1  # integral parts that take any fraction
    if last_any is None or first <= last_any:
        alts.append(f"{_digits(first, last_any)} {_FRACTION}")
    if lo_strict and (hi is None or lo < hi):
        alts.append(f'"{lo}" {_NONZERO_FRACTION}')  # just above lo
    if hi is not None and not hi_strict and (hi > lo or (hi == lo and not lo_strict)):
        alts.append(f'"{hi}" {_ZERO_FRACTION}')  # exactly hi
    return alts


def number_rule(schema: dict) -> str | None:
    """A GBNF body for a decimal within the schema's bounds, or None when unbounded."""
    lo_f, lo_strict = _bound(schema, "minimum", "exclusiveMinimum")
    hi_f, hi_strict = _bound(schema, "maximum", "exclusiveMaximum")
    if lo_f is None and hi_f is None:
        return None
    # round non-integer bounds inwards; they become inclusive integer bounds
    lo = None if lo_f is None else (int(lo_f) if float(lo_f).is_integer() else math.ceil(lo_f))
    hi = None if hi_f is None else (int(hi_f) if float(hi_f).is_integer() else math.floor(hi_f))
    lo_strict = lo_strict and lo is not None and lo == lo_f
    hi_strict = hi_strict and hi is not None and hi == hi_f
    alts: list[str] = []
    if hi is None or hi > 0 or (hi == 0 and not hi_strict):  # x >= 0
        base, strict = (0, False) if lo is None or lo < 0 else (lo, lo_strict)
        alts += _magnitudes(base, strict, hi, hi_strict)
    if lo is None or lo < 0:  # x < 0, written "-" m with -hi <(=) m <(=) -lo
        base, strict = (0, True) if hi is None or hi >= 0 else (-hi, hi_strict)
        neg = _magnitudes(base, strict, None if lo is None else -lo, lo_strict)
        if neg:
            alts.append('"-" (' + " | ".join(neg) + ")")
    if not alts:
        raise GrammarError(f"the schema's bounds {lo_f} and {hi_f} are too narrow to express", field="schema")
    return "(" + " | ".join(alts) + ") space"
