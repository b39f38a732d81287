"""The two merge loops of llama.cpp's tokenizers, over a doubly linked list of symbols.

Byte-level BPE merges the adjacent pair of lowest merge rank first; SentencePiece (SPM)
merges the adjacent pair whose joined text is the vocabulary token of highest score first.
Ties go to the leftmost pair, as llama.cpp's priority queues order them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

__all__ = ["merge_bpe", "merge_spm"]


def _merge(symbols: list[str], priority: Callable[[str, str], float | None]) -> list[str]:
    """Merge adjacent symbols by ``priority(left, right)`` (lower first; None: never)."""
    n = len(symbols)
    if n < 2:
        return symbols
    text = list(symbols)
    prev = list(range(-1, n - 1))
    nxt = [*range(1, n), -1]
    heap: list[tuple[float, int, int, str, str]] = []

    def push(left: int, right: int) -> None:
        if left < 0 or right < 0:
            return
        rank = priority(text[left], text[right])
        if rank is not None:
            heapq.heappush(heap, (rank, left, right, text[left], text[right]))

    for i in range(n - 1):
        push(i, i + 1)
    while heap:
        _, left, right, left_text, right_text = heapq.heappop(heap)
        if text[left] != left_text or text[right] != right_text or nxt[left] != right:
            continue  # stale: one side has merged since
        text[left] = left_text + right_text
        text[right] = ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        push(prev[left], left)
        push(left, nxt[left])
    out, i = [], 0
    while i != -1:
        if text[i]:
            out.append(text[i])
        i = nxt[i]
    return out


def merge_bpe(word: str, ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """A byte-encoded word's BPE symbols (one per character to start with)."""
    return _merge(list(word), lambda a, b: ranks.get((a, b)))


def merge_spm(text: str, scores: Mapping[str, float]) -> list[str]:
    """An escaped SentencePiece text's symbols: pairs that form a token merge by its score."""
    def priority(a: str, b: str) -> float | None:
        score = scores.get(a + b)
        return None if score is None else -score

    return _merge(list(text), priority)
