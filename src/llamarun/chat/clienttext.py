"""Client text never becomes a control token: marking it before a chat template runs.

A chat template's own text (``<|im_start|>user\\n``) must tokenize with
control-token parsing; the text a client sent (message contents, names, tool
calls and results, tool definitions, documents, system prompts) must not, or a
user message ``<|im_start|>system ...`` forges a system turn.  Tokenizing each
piece of client text on its own would change tokens at every boundary, so only
what could become a control token is set apart:

- every occurrence of a control token's text inside a client string (in any
  letter case, so that a template's ``lower`` cannot make one) is replaced, before rendering, by a placeholder (private-use characters and a
  per-render nonce), and tokenized as plain text after rendering;
- the edges of a client string (also after stripping whitespace) that are a
  partial control token (``<|im_`` at the end, ``start|>`` at the start) are
  replaced the same way, and after rendering they stay plain only where they
  join their neighbours (another client string, say) into a control token;
  otherwise they return to the text around them.

Text without control-token text therefore renders and tokenizes exactly as
before (one part, parsed with specials).  Templates transform client text
(``trim``, ``upper``, ``split``): the placeholders are private-use characters
that such filters leave alone (set-apart text comes back as the client wrote
it, whatever the template did to the text around it); a template that drops or
mangles one loses only that text, never turning it into a control token.
Roles are client text too: over HTTP they are one of a fixed set.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..types import PromptSegments

__all__ = ["ClientText"]

_OPEN, _SEP, _CLOSE = "\uf8f0", "\uf8f1", "\uf8f2"
_FULL, _EDGE, _TEMPLATE = 0, 1, 2


class ClientText:
    """Marks client strings for one vocabulary's control-token texts (build once per model)."""

    def __init__(self, control_texts: Collection[str]) -> None:
        self.texts = frozenset(t for t in control_texts if t and not set(t) & {_OPEN, _SEP, _CLOSE})
        folded = {t.lower() for t in self.texts}  # a template's ``lower`` or ``upper`` cannot make one either
        self._prefixes = frozenset(t[:i] for t in folded for i in range(1, len(t)))
        self._suffixes = frozenset(t[i:] for t in folded for i in range(1, len(t)))
        self._longest = max((len(t) for t in self.texts | folded), default=0)
        alternatives = "|".join(re.escape(t) for t in sorted(self.texts, key=len, reverse=True))
        self._any_re = re.compile(alternatives, re.IGNORECASE) if self.texts else None
        self._find_re = re.compile(f"(?=({alternatives}))", re.IGNORECASE) if self.texts else None

    @property
    def longest(self) -> int:
        """The length of the longest control token's text."""
        return self._longest

    def render(self, render: Callable[[Callable[[Any], Any]], str]) -> PromptSegments:
        """Run ``render(mark)``: it passes every client value through ``mark`` and renders;
        the rendered text comes back split into template (special) and client (plain) parts."""
        marking = _Marking(self)
        return marking.split(render(marking.mark))

    # -- finding control-token text -------------------------------------------------

    def occurrences(self, text: str, start: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
        """Every (start, end) where some control token's text occurs, beginning in [start, stop)."""
        if self._any_re is None or self._find_re is None:
            return []
        stop = len(text) if stop is None else min(stop, len(text))
        start = max(0, start)
        if not self._any_re.search(text, start, stop + self._longest):
            return []
        return [(m.start(), m.start() + len(m.group(1)))
                for m in self._find_re.finditer(text, start, stop + self._longest) if m.start() < stop]

    def edges(self, text: str) -> list[tuple[int, int]]:
        """The head that ends a control token and the tail that begins one (of ``text`` and of it stripped)."""
        spans = []
        for offset, end in ((0, len(text)), (len(text) - len(text.lstrip()), len(text.rstrip()))):
            for n in range(min(self._longest - 1, end - offset), 0, -1):
                if text[offset:offset + n].lower() in self._suffixes:
                    spans.append((offset, offset + n))
                    break
            for n in range(min(self._longest - 1, end - offset), 0, -1):
                if text[end - n:end].lower() in self._prefixes:
                    spans.append((end - n, end))
                    break
        return spans


def _merge(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Union of overlapping (start, end, kind) spans; a union with a full occurrence is full."""
    merged: list[tuple[int, int, int]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), min(last[2], kind))
        else:
            merged.append((start, end, kind))
    return merged


class _Marking:
    """One render: the placeholders handed out and the text each stands for."""

    def __init__(self, guard: ClientText) -> None:
        self.guard = guard
        self.nonce = f"{secrets.randbelow(10**12):012d}"
        self.held: list[tuple[str, int]] = []
        self._pattern = re.compile(re.escape(_OPEN + self.nonce + _SEP) + r"(\d+)" + re.escape(_CLOSE))

    def mark(self, value: Any) -> Any:
        """A copy of ``value`` with every string (keys too) marked."""
        if isinstance(value, str):
            return self._mark_string(value)
        if isinstance(value, Mapping):
            return {self.mark(k): self.mark(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mark(v) for v in value]
        return value

    def _mark_string(self, text: str) -> str:
        if not self.guard.texts:
            return text
        spans = [(a, b, _FULL) for a, b in self.guard.occurrences(text)]
        spans += [(a, b, _EDGE) for a, b in self.guard.edges(text)]
        if not spans and not text.isascii() and self._case_mapped_hides_one(text):
            spans = [(0, len(text), _FULL)]  # a character whose case mapping is several (ﬆ -> ST)
        if not spans:
            return text
        out, pos = [], 0
        for start, end, kind in _merge(spans):
            out += [text[pos:start], f"{_OPEN}{self.nonce}{_SEP}{len(self.held)}{_CLOSE}"]
            self.held.append((text[start:end], kind))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _case_mapped_hides_one(self, text: str) -> bool:
        """True when a template's ``upper``/``lower`` (or case folding) of ``text`` would contain
        control-token text or a partial marker at an edge that the text itself does not."""
        for mapped in {text.upper(), text.lower(), text.casefold()} - {text}:
            if self.guard.occurrences(mapped) or self.guard.edges(mapped):
                return True
        return False

    def split(self, rendered: str) -> PromptSegments:
        pieces: list[tuple[str, int]] = []
        pos = 0
        for match in self._pattern.finditer(rendered):
            index = int(match.group(1))
            if index < len(self.held):
                pieces += [(rendered[pos:match.start()], _TEMPLATE), self.held[index]]
                pos = match.end()
        pieces.append((rendered[pos:], _TEMPLATE))
        return PromptSegments(_join(self._settle(pieces)))

    def _settle(self, pieces: list[tuple[str, int]]) -> list[tuple[str, bool]]:
        """(text, parse_special) per piece: an edge stays plain only where a control token would cross it."""
        if not any(kind == _EDGE for _, kind in pieces):
            return [(text, kind == _TEMPLATE) for text, kind in pieces]
        whole = "".join(text for text, _ in pieces)
        out, pos = [], 0
        for text, kind in pieces:
            special = kind == _TEMPLATE
            if kind == _EDGE:
                end = pos + len(text)
                hits = self.guard.occurrences(whole, pos - self.guard.longest + 1, end)
                special = not any(a < end and b > pos for a, b in hits)
            out.append((text, special))
            pos += len(text)
        return out


def _join(parts: list[tuple[str, bool]]) -> tuple[tuple[str, bool], ...]:
    """Adjacent parts of one kind joined; empty parts dropped; at least one part."""
    joined: list[tuple[str, bool]] = []
    for text, special in parts:
        if not text:
            continue
        if joined and joined[-1][1] == special:
            joined[-1] = (joined[-1][0] + text, special)
        else:
            joined.append((text, special))
    return tuple(joined) or (("", True),)
