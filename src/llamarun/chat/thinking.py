"""Reasoning text: split what a model writes between thinking markers from its answer.

:class:`ThinkingSplitter` works on a stream: it is fed text as it is generated
and returns the thinking and content that are certain so far, holding back
anything that could be the start of a marker (it never emits half a marker),
and whitespace at the edges of the thinking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["THINKING_MARKERS", "ThinkingSplitter", "split_thinking", "thinking_markers", "thinking_token_count"]

#: (start, end) marker pairs used by reasoning models, most common first.
THINKING_MARKERS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),  # DeepSeek-R1, Qwen3, QwQ, SmolLM3, Phi-4-reasoning
    ("<thinking>", "</thinking>"),
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|START_THINKING|>", "<|END_THINKING|>"),  # Command A reasoning
    ("◁think▷", "◁/think▷"),  # Kimi
)


def thinking_markers(template_source: str | None) -> tuple[str, str] | None:
    """The marker pair a chat template uses, or None if it shows no sign of reasoning."""
    for start, end in THINKING_MARKERS:
        if template_source and end in template_source:
            return start, end
    return None


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


@dataclass
class _Parts:
    thinking: str = ""
    content: str = ""


class ThinkingSplitter:
    """Incremental splitter; ``feed`` and ``flush`` return ``(thinking, content)`` deltas.

    ``in_thinking=True`` starts inside a thinking block, for prompts that end
    with the start marker (DeepSeek-R1's generation prompt opens ``<think>``).
    """

    def __init__(self, start: str = "<think>", end: str = "</think>", *, in_thinking: bool = False) -> None:
        if not start or not end:
            raise ValueError("thinking markers must be non-empty")
        self.start, self.end = start, end
        self.in_thinking = in_thinking
        self._buffer = ""
        self._at_section_start = True  # drop whitespace right after a marker

    def feed(self, text: str) -> tuple[str, str]:
        out = _Parts()
        self._buffer += text
        while self._buffer:
            marker = self.end if self.in_thinking else self.start
            index = self._buffer.find(marker)
            if index >= 0:
                self._emit(self._buffer[:index], out, final=True)
                self._buffer = self._buffer[index + len(marker):]
                self.in_thinking = not self.in_thinking
                self._at_section_start = True
                continue
            keep = _partial_suffix(self._buffer, marker)
            ready = self._buffer[:len(self._buffer) - keep]
            if self.in_thinking:  # trailing whitespace may turn out to precede the end marker
                stripped = ready.rstrip()
                keep += len(ready) - len(stripped)
                ready = stripped
            self._emit(ready, out, final=False)
            self._buffer = self._buffer[len(self._buffer) - keep:] if keep else ""
            break
        return out.thinking, out.content

    def flush(self) -> tuple[str, str]:
        """Whatever is held back, at the end of generation."""
        out = _Parts()
        self._emit(self._buffer, out, final=True)
        self._buffer = ""
        return out.thinking, out.content

    def _emit(self, text: str, out: _Parts, *, final: bool) -> None:
        if self._at_section_start:
            text = text.lstrip()
            if not text:
                return
            self._at_section_start = False
        if self.in_thinking:
            out.thinking += text.rstrip() if final else text
        else:
            out.content += text


def split_thinking(text: str, start: str = "<think>", end: str = "</think>", *,
                   in_thinking: bool = False) -> tuple[str, str]:
    """Whole-text version: ``(thinking, content)``."""
    splitter = ThinkingSplitter(start, end, in_thinking=in_thinking)
    thinking, content = splitter.feed(text)
    more_thinking, more_content = splitter.flush()
    return thinking + more_thinking, content + more_content


def thinking_token_count(pieces: Iterable[bytes], start: str = "<think>", end: str = "</think>", *,
                         in_thinking: bool = False) -> int:
    """How many generated tokens (each one's bytes, in order) are reasoning: from the one that
    completes the start marker to the one that completes the end marker (to the last, if it never
    comes), as :class:`ThinkingSplitter` reads their text."""
    markers = (start.encode("utf-8"), end.encode("utf-8"))
    text, searched, count = bytearray(), 0, 0
    for piece in pieces:
        reasoning = in_thinking  # this token opens, holds or closes reasoning
        text += piece
        while True:
            marker = markers[in_thinking]
            index = text.find(marker, searched)
            if index < 0:
                searched = max(searched, len(text) - len(marker) + 1)
                break
            searched, in_thinking, reasoning = index + len(marker), not in_thinking, True
        count += reasoning
    return count
