"""A GGUF vocabulary in Python: special tokens, tokenize, pieces, detokenize, as llama.cpp does them.

Two tokenizer families: byte-level BPE (``tokenizer.ggml.model = gpt2``: GPT-2, SmolLM2,
llama-3 vocabularies) with the model's pre-tokenizer regexes and merge ranks, and
SentencePiece (``llama``: llama-2, mistral) with token scores and ``<0xXX>`` byte fallback.
Special tokens (control, user-defined, unknown) are split out of the text first, longest
first, as llama.cpp does; control and unknown ones only when ``parse_special``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.vocab import encode_text
from ..errors import InvalidParameterError, ModelLoadError
from .merges import merge_bpe, merge_spm
from .pretokenize import PRE_TOKENIZERS, PreTokenizer, byte_encoder

__all__ = ["Vocab", "VocabData"]

_MAX_TEXT_BYTES = 64 << 20
# llama_token_attr bits, and GGUF token types -> attributes
ATTR_UNKNOWN, ATTR_UNUSED, ATTR_NORMAL, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_BYTE = 1, 2, 4, 8, 16, 32
_TYPE_ATTR = {1: ATTR_NORMAL, 2: ATTR_UNKNOWN, 3: ATTR_CONTROL, 4: ATTR_USER_DEFINED, 5: ATTR_UNUSED, 6: ATTR_BYTE}
_EOT_NAMES = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
              "<EOT>", "_<EOT>", "<end_of_utterance>")
_EOG_NAMES = frozenset(("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
                        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"))
# llama.cpp's fill-in-the-middle token names: all become control tokens, the last three end generation
_FIM_NAMES = {
    "pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\u2581<PRE>", "<|code_prefix|>", "<|prefix|>"),
    "suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>"),
    "mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\u2581<MID>", "<|code_middle|>", "<|middle|>"),
    "pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "sep": ("<|file_sep|>",),
}
_SPACE = "\u2581"  # SentencePiece's visible space


@dataclass(frozen=True)
class VocabData:
    """What a GGUF says about its tokenizer."""

    model: str  # "gpt2" or "llama"
    pre: str
    tokens: tuple[str, ...]
    types: tuple[int, ...]
    scores: tuple[float, ...]
    merges: tuple[str, ...]
    ids: dict[str, int]  # special token ids and flags from the key/values (may be partial)
    flags: dict[str, bool]


def read_vocab_data(reader: Any, path: str) -> VocabData:
    def get(key: str, default: Any = None) -> Any:
        field = reader.get_field(f"tokenizer.ggml.{key}")
        return default if field is None else field.contents()

    model = get("model")
    tokens = get("tokens")
    if not tokens:
        raise ModelLoadError(f"{path!r} has no tokenizer vocabulary", path=path)
    ids = {name: int(v) for name in ("bos", "eos", "eot", "eom", "unk", "pad")
           if (v := get(f"{name}_token_id")) is not None}
    flags = {name: bool(v) for name in ("add_bos_token", "add_eos_token", "add_space_prefix")
             if (v := get(name)) is not None}
    return VocabData(model=str(model), pre=str(get("pre", "default")), tokens=tuple(tokens),
                     types=tuple(get("token_type") or [1] * len(tokens)),
                     scores=tuple(get("scores") or [0.0] * len(tokens)), merges=tuple(get("merges") or ()),
                     ids=ids, flags=flags)


class Vocab:
    """The token-level view of a NumPy :class:`~llamarun.numpy_engine.Model` (the engine Vocab's methods)."""

    def __init__(self, data: VocabData, path: str = "") -> None:
        if data.model == "gpt2":
            if data.pre not in PRE_TOKENIZERS:
                raise ModelLoadError(f"the NumPy backend does not know the pre-tokenizer {data.pre!r} of {path!r}; "
                                     "use the llama.cpp backend", path=path)
            self._spm = False
            defaults = {"bos": 11, "eos": 11}
        elif data.model == "llama":
            self._spm = True
            defaults = {"bos": 1, "eos": 2, "unk": 0}
        else:
            raise ModelLoadError(f"the NumPy backend does not implement the {data.model!r} tokenizer of {path!r}",
                                 path=path)
        self.texts = data.tokens
        self.n_tokens = len(data.tokens)
        self._id = {text: i for i, text in enumerate(data.tokens)}
        self.attrs = [_TYPE_ATTR.get(t, 0) for t in data.types]
        self._scores = {text: float(s) for text, s in zip(data.tokens, data.scores, strict=True)}
        llama3 = data.pre in ("llama3", "llama-v3", "llama-bpe", "falcon3")
        self._ignore_merges = llama3 and not self._spm
        self._pre = None if self._spm else PreTokenizer(data.pre)
        self._ranks = {} if self._spm else _ranks(data.merges)
        ids = {k: v for k, v in {**defaults, **data.ids}.items() if 0 <= v < self.n_tokens}
        self.bos, self.eos = ids.get("bos", -1), ids.get("eos", -1)
        # llama.cpp takes the first name it meets in a hash map; the lowest id here
        self.eot = ids.get("eot", min((self._id[t] for t in _EOT_NAMES if t in self._id), default=-1))
        fim = {kind: min((self._id[t] for t in names if t in self._id), default=-1) for kind, names in _FIM_NAMES.items()}
        for token in (self.eot, ids.get("eom", -1), *fim.values()):
            if token >= 0:
                self.attrs[token] |= ATTR_CONTROL
        self.add_bos = data.flags.get("add_bos_token", self._spm or llama3)
        self.add_eos = data.flags.get("add_eos_token", False)
        self.sep = ids.get("sep", -1)
        self.add_sep = data.flags.get("add_sep_token", False)
        self._add_space_prefix = data.flags.get("add_space_prefix", self._spm)
        self._clean_spaces = not self._spm and data.pre != "smollm"
        self._eog = frozenset({i for t, i in self._id.items() if t in _EOG_NAMES}
                              | {t for t in (self.eos, self.eot, ids.get("eom", -1), fim["pad"], fim["rep"], fim["sep"])
                                 if t >= 0})
        special = [i for i, a in enumerate(self.attrs) if a & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)]
        self._special = sorted(special, key=lambda i: -len(self.texts[i]))
        self._decoder = {c: b for b, c in byte_encoder().items()}
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._words: dict[str, list[int]] = {}

    # -- token facts -------------------------------------------------------------

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def is_control(self, token: int) -> bool:
        return 0 <= token < self.n_tokens and bool(self.attrs[token] & ATTR_CONTROL)

    def check_token(self, token: int) -> None:
        if not 0 <= token < self.n_tokens:
            raise InvalidParameterError(f"token id {token} is outside the vocabulary (0..{self.n_tokens - 1})")

    def control_texts(self) -> frozenset[str]:
        return frozenset(self.texts[i] for i, a in enumerate(self.attrs)
                         if a & (ATTR_CONTROL | ATTR_UNKNOWN) and self.texts[i])

    def special_texts(self) -> frozenset[str]:
        """The text of every control or user-defined token (what the chat-template fallback reads)."""
        return frozenset(self.texts[i] for i, a in enumerate(self.attrs)
                         if a & (ATTR_CONTROL | ATTR_USER_DEFINED) and self.texts[i])

    # -- tokenize -----------------------------------------------------------------

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """The text split around special tokens (ints), longest token first."""
        parts: list[str | int] = [text] if text else []
        for token in self._special:
            if not parse_special and self.attrs[token] & (ATTR_CONTROL | ATTR_UNKNOWN):
                continue
            needle = self.texts[token]
            split: list[str | int] = []
            for part in parts:
                if isinstance(part, int) or needle not in part:
                    split.append(part)
                    continue
                pieces = part.split(needle)
                for k, piece in enumerate(pieces):
                    if k:
                        split.append(token)
                    if piece:
                        split.append(piece)
            parts = split
        return parts

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Text -> token ids, as ``llama_tokenize``."""
        if len(encode_text(text)) > _MAX_TEXT_BYTES:
            raise InvalidParameterError("text is too long to tokenize", field="prompt")
        out: list[int] = []
        if add_special and self.add_bos and self.bos >= 0:
            out.append(self.bos)
        prev_special = True
        for part in self._partition(text, parse_special):
            if isinstance(part, int):
                out.append(part)
                prev_special = True
            elif self._spm:
                out += self._spm_tokens((" " if self._add_space_prefix and prev_special else "") + part)
                prev_special = False
            else:
                for word in self._pre.words(part):  # type: ignore[union-attr]
                    out += self._bpe_word(word)
        if add_special and self.add_eos and self.eos >= 0:
            out.append(self.eos)
        return out

    def _bpe_word(self, word: str) -> list[int]:
        cached = self._words.get(word)
        if cached is not None:
            return cached
        if self._ignore_merges and word in self._id:
            ids = [self._id[word]]
        else:
            ids = []
            for symbol in merge_bpe(word, self._ranks):
                token = self._id.get(symbol)
                if token is not None:
                    ids.append(token)
                else:  # llama.cpp looks each byte of the symbol up as a one-byte text
                    ids += [self._id[ch] for ch in symbol.encode("utf-8").decode("latin-1") if ch in self._id]
        if len(self._words) < 1 << 16:
            self._words[word] = ids
        return ids

    def _spm_tokens(self, text: str) -> list[int]:
        ids: list[int] = []
        for symbol in merge_spm(text.replace(" ", _SPACE), self._scores):
            token = self._id.get(symbol)
            if token is not None:
                ids.append(token)
                continue
            for byte in symbol.encode("utf-8"):
                byte_token = self._id.get(f"<0x{byte:02X}>", self._id.get(chr(byte)))
                if byte_token is not None:
                    ids.append(byte_token)
        return ids

    def tokenize_parts(self, parts: Sequence[tuple[str, bool]], *, add_special: bool = True) -> list[int]:
        """Token ids of ``(text, parse_special)`` parts, each tokenized on its own, concatenated;
        ``add_special`` adds BOS (and EOS where the model wants one) around the whole, once."""
        if len(parts) == 1:
            return self.tokenize(parts[0][0], add_special=add_special, parse_special=parts[0][1])
        tokens: list[int] = []
        for text, special in parts:
            tokens += self.tokenize(text, add_special=False, parse_special=special)
        if add_special:
            head = [self.bos] if self.add_bos and self.bos >= 0 else []
            tail = [self.eos] if self.add_eos and self.eos >= 0 else []
            tokens = head + tokens + tail
        return tokens

    # -- detokenize -------------------------------------------------------------------

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character), as ``llama_token_to_piece``."""
        key = (token, special)
        cached = self._pieces.get(key)
        if cached is None:
            self.check_token(token)
            cached = self._pieces[key] = self._piece(token, special)
        return cached

    def _piece(self, token: int, special: bool) -> bytes:
        attr, text = self.attrs[token], self.texts[token]
        if attr & (ATTR_CONTROL | ATTR_UNKNOWN):
            return text.encode() if special else b""
        if attr & ATTR_USER_DEFINED:
            return text.encode()
        if attr & ATTR_NORMAL:
            if self._spm:
                return text.replace(_SPACE, " ").encode()
            return _decode_bytes(text, self._decoder)
        if attr & ATTR_BYTE:
            return bytes([int(text[3:5], 16)])
        return b""

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        """Token ids -> text, exactly as ``llama_detokenize`` renders the whole sequence."""
        out = bytearray()
        for k, token in enumerate(tokens):
            piece = self.piece(token, special=special)
            if k == 0 and self._add_space_prefix and piece.startswith(b" "):
                piece = piece[1:]
            out += piece
        text = bytes(out)
        if self._clean_spaces:
            text = _clean_spaces(text)
        return text.decode("utf-8", "replace")


def _ranks(merges: Sequence[str]) -> dict[tuple[str, str], int]:
    ranks: dict[tuple[str, str], int] = {}
    for rank, merge in enumerate(merges):
        cut = merge.find(" ", 1)
        pair = (merge[:cut], merge[cut + 1:]) if cut >= 0 else ("", "")
        ranks.setdefault(pair, rank)
    return ranks


def _decode_bytes(text: str, decoder: dict[str, int]) -> bytes:
    out = bytearray()
    for ch in text:
        byte = decoder.get(ch)
        if byte is not None:
            out.append(byte)
        else:
            out += b"[UNK_BYTE_0x" + ch.encode().hex().encode() + text.encode() + b"]"
    return bytes(out)


def _clean_spaces(text: bytes) -> bytes:
    """llama.cpp's clean_up_tokenization_spaces: " ?" -> "?", " ' " -> "'", " 's" -> "'s" ..."""
    out = bytearray(text[:1])
    for i in range(1, len(text)):  # " ?", " !", " .", " ,"
        if text[i - 1] == 0x20 and text[i] in b"?!.,":
            out.pop()
        out.append(text[i])
    text, out = bytes(out), bytearray(out[:1])
    i = 1
    while i < len(text):  # a lone apostrophe between spaces
        if text[i] == 0x27 and i + 1 < len(text) and text[i - 1] == 0x20 and text[i + 1] == 0x20:
            out.pop()
            out.append(0x27)
            i += 2
            continue
        out.append(text[i])
        i += 1
    text, out = bytes(out), bytearray(out[:1])
    for i in range(1, len(text)):  # " 's", " 'm", " 're", " 've"
        if text[i - 1] == 0x20 and text[i] == 0x27 and i + 1 < len(text):
            nxt = text[i + 1:i + 3]
            if nxt[:1] in (b"s", b"m") or nxt in (b"re", b"ve"):
                out.pop()
        out.append(text[i])
    return bytes(out)
