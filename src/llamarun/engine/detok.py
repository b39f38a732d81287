"""Incremental detokenizer: never emits half a UTF-8 character."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vocab import Vocab

__all__ = ["Detokenizer"]


class Detokenizer:
    """Turns a stream of token ids into text, one token at a time.

    A multi-byte character split across tokens (emoji, CJK, byte-fallback
    tokens) is held back until its last byte arrives; invalid bytes become
    U+FFFD.  The concatenation of every :meth:`push` plus :meth:`flush` equals
    the detokenization of the whole sequence.
    """

    def __init__(self, vocab: "Vocab", *, special: bool = False) -> None:
        self._vocab = vocab
        self._special = special
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(self._vocab.piece(token, special=self._special))

    def flush(self) -> str:
        """Text held back at the end (an incomplete character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)
