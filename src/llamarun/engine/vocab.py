"""A model's vocabulary: special tokens, tokenize, token pieces, detokenize."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from ._lib import lib

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Vocab", "encode_text"]

_MAX_TEXT_BYTES = 64 << 20  # refuse to tokenize more than 64 MiB at once


def encode_text(text: str, field: str = "prompt") -> bytes:
    """``text`` as UTF-8; a lone surrogate (JSON's ``"\\ud800"``) is not Unicode text and is refused
    rather than passed on as bytes no tokenizer reads as the caller meant."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(f"the text has a lone surrogate (U+{ord(text[exc.start]):04X} at character "
                                    f"{exc.start}), which is not valid Unicode", field=field) from None
_PARSED_ONLY_AS_SPECIAL = (1 << 0) | (1 << 3)  # LLAMA_TOKEN_ATTR_UNKNOWN | LLAMA_TOKEN_ATTR_CONTROL
_SPECIAL = (1 << 2) | (1 << 3)  # LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_CONTROL


class Vocab:
    """Token-level view of a :class:`Model`; valid while the model is open."""

    def __init__(self, ptr: Any, model: "Model") -> None:
        self._vocab = ptr
        self._model = model
        llama = lib()
        self.n_tokens: int = int(llama.llama_vocab_n_tokens(ptr))
        self.bos: int = int(llama.llama_vocab_bos(ptr))
        self.eos: int = int(llama.llama_vocab_eos(ptr))
        self.eot: int = int(llama.llama_vocab_eot(ptr))
        self.add_bos: bool = bool(llama.llama_vocab_get_add_bos(ptr))
        self.add_eos: bool = bool(llama.llama_vocab_get_add_eos(ptr))
        self.add_sep: bool = bool(llama.llama_vocab_get_add_sep(ptr))
        self.sep: int = int(llama.llama_vocab_sep(ptr))
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._eog: dict[int, bool] = {}  # asked once per token id: the answer cannot change
        self._control_texts: frozenset[str] | None = None

    @property
    def ptr(self) -> Any:
        self._model.ptr  # raises ClosedHandleError once the model is closed  # noqa: B018
        return self._vocab

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, <|im_end|> ...)."""
        ptr = self.ptr  # raises ClosedHandleError once the model is closed
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(lib().llama_vocab_is_eog(ptr, token))
        return known

    def is_control(self, token: int) -> bool:
        return bool(lib().llama_vocab_is_control(self.ptr, token))

    def check_token(self, token: int) -> None:
        if not 0 <= token < self.n_tokens:
            raise InvalidParameterError(f"token id {token} is outside the vocabulary (0..{self.n_tokens - 1})")

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Text -> token ids. ``add_special`` adds BOS where the model wants it."""
        data = encode_text(text)
        if len(data) > _MAX_TEXT_BYTES:
            raise InvalidParameterError(f"text of {len(data)} bytes is too long to tokenize", field="prompt")
        llama = lib()
        capacity = len(data) + 8
        buf = (ctypes.c_int32 * capacity)()
        n = llama.llama_tokenize(self.ptr, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:  # cannot happen for sane vocabularies; retry with the size asked for
            capacity = -n
            buf = (ctypes.c_int32 * capacity)()
            n = llama.llama_tokenize(self.ptr, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            raise InvalidParameterError("text could not be tokenized", field="prompt")
        return list(buf[:n])

    def rank_pair(self, query: str, document: str, template: str | None = None) -> list[int]:
        """A reranker's input for (query, document), laid out as llama-server lays it: the model's
        ``rerank`` template with ``{query}`` and ``{document}`` filled in, else
        ``[BOS] query [EOS] [SEP] document [EOS]`` as the vocabulary adds them (EOS falls back to SEP)."""
        if template is not None:
            prompt = template.replace("{query}", query).replace("{document}", document)
            return self.tokenize(prompt, add_special=False, parse_special=True)
        eos = self.eos if self.eos >= 0 else self.sep
        tokens = [self.bos] if self.add_bos else []
        tokens += self.tokenize(query, add_special=False)
        tokens += [eos] if self.add_eos else []
        tokens += [self.sep] if self.add_sep else []
        tokens += self.tokenize(document, add_special=False)
        return tokens + ([eos] if self.add_eos else [])

    def tokenize_parts(self, parts: Sequence[tuple[str, bool]], *, add_special: bool = True) -> list[int]:
        """Token ids of ``(text, parse_special)`` parts, each tokenized on its own, concatenated.

        ``add_special`` adds BOS (and EOS where the model wants one) around the whole, once.
        """
        if len(parts) == 1:
            return self.tokenize(parts[0][0], add_special=add_special, parse_special=parts[0][1])
        tokens: list[int] = []
        for text, special in parts:
            tokens += self.tokenize(text, add_special=False, parse_special=special)
        if add_special:
            ends = self.tokenize("", add_special=True)  # [BOS], [EOS], [BOS, EOS] or []
            head = [self.bos] if self.add_bos and ends[:1] == [self.bos] else []
            tokens = head + tokens + ends[len(head):]
        return tokens

    def control_texts(self) -> frozenset[str]:
        """The text of every token that tokenizing makes only when parsing special tokens
        (control and unknown tokens: ``<|im_start|>``, ``</s>`` ...).  Read once per model."""
        if self._control_texts is None:
            llama, ptr = lib(), self.ptr
            texts = set()
            for token in range(self.n_tokens):
                if llama.llama_vocab_get_attr(ptr, token) & _PARSED_ONLY_AS_SPECIAL:
                    text = self.piece(token, special=True).decode("utf-8", "replace")
                    if text:
                        texts.add(text)
            self._control_texts = frozenset(texts)
        return self._control_texts

    def special_texts(self) -> frozenset[str]:
        """The text of every control or user-defined token (a chat family's turn markers are one or
        the other: ``<start_of_turn>``, ``<|start_header_id|>``, ``[INST]`` ...)."""
        llama, ptr = lib(), self.ptr
        return frozenset(text for token in range(self.n_tokens) if llama.llama_vocab_get_attr(ptr, token) & _SPECIAL
                         for text in (self.piece(token, special=True).decode("utf-8", "replace"),) if text)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        key = (token, special)
        cached = self._pieces.get(key)
        if cached is not None:
            return cached
        self.check_token(token)
        llama = lib()
        size = 32
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_token_to_piece(self.ptr, token, buf, size, 0, special)
            if n >= 0:
                break
            size = -n
        piece = buf.raw[:n]
        self._pieces[key] = piece
        return piece

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        """Token ids -> text, exactly as llama.cpp renders the whole sequence."""
        if not tokens:
            return ""
        for token in tokens:
            self.check_token(token)
        llama = lib()
        arr = (ctypes.c_int32 * len(tokens))(*tokens)
        size = max(64, len(tokens) * 8)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_detokenize(self.ptr, arr, len(tokens), buf, size, False, special)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n
