"""Pre-tokenizer regexes of byte-level BPE vocabularies, split the way llama.cpp splits.

llama.cpp runs a vocabulary's regexes one after the other, each splitting every piece the
previous ones left (matches and the text between them both become pieces), on a "collapsed"
copy of the text where each non-ASCII character stands for its Unicode category (letter,
number, punctuation, accent mark, symbol, other; non-ASCII whitespace as ``\\v``).  The same
is done here with the standard library's ``re``: ``\\p{L}`` becomes a class of the letter
marker plus ASCII letters, and ``\\s`` llama.cpp's whitespace (not Python's, which also takes
``\\x1c``-``\\x1f``).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["PRE_TOKENIZERS", "PreTokenizer", "byte_encoder"]

_NUMBER, _LETTER, _PUNCT, _MARK, _SYMBOL, _OTHER, _SPACE = "\xd1", "\xd2", "\xd3", "\xd4", "\xd5", "\xd0", "\x0b"
_CATEGORY = {"N": _NUMBER, "L": _LETTER, "P": _PUNCT, "M": _MARK, "S": _SYMBOL}
# llama.cpp's whitespace codepoints (unicode_set_whitespace)
_WHITESPACE = frozenset([0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

L = "\xd2A-Za-z"
N = "\xd10-9"
S = "\\t\\n\\x0b\\x0c\\r "
P = "\xd3!-#%-*,-/:-;?-@\\[-\\]_{}"

_GPT2 = (f"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])")
_LLAMA3 = (f"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n{L}{N}]?[{L}]+|[{N}]{{1,3}}"
           f"| ?[^{S}{L}{N}]+[\\r\\n]*|[{S}]*[\\r\\n]+|[{S}]+(?![^{S}])|[{S}]+")

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> its regexes, in order
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "default": (f"[{P}$+<=>^~|]+", _GPT2, f"[{N}]+", "[0-9][0-9][0-9]"),
    "gpt-2": (_GPT2,), "phi-2": (_GPT2,),
    "smollm": (f"[{N}]", _GPT2),
    "llama3": (_LLAMA3,), "llama-v3": (_LLAMA3,), "llama-bpe": (_LLAMA3,), "falcon3": (_LLAMA3,),
}


def _collapse_char(ch: str) -> str:
    code = ord(ch)
    if code < 128:
        return ch
    if code in _WHITESPACE:
        return _SPACE
    return _CATEGORY.get(unicodedata.category(ch)[0], _OTHER)


def byte_encoder() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


class PreTokenizer:
    """Splits text into words (as llama.cpp's ``unicode_regex_split``) and byte-encodes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._patterns = [re.compile(p) for p in PRE_TOKENIZERS[name]]
        self._collapsed: dict[str, str] = {}
        encoder = byte_encoder()
        self._bytes = [encoder[b] for b in range(256)]

    def _collapse(self, text: str) -> str:
        table = self._collapsed
        out = []
        for ch in text:
            c = table.get(ch)
            if c is None:
                c = table[ch] = _collapse_char(ch)
            out.append(c)
        return "".join(out)

    def split(self, text: str) -> list[str]:
        collapsed = self._collapse(text)
        bounds = [(0, len(text))]
        for pattern in self._patterns:
            pieces = []
            for start, end in bounds:
                chunk = collapsed[start:end]
                at = 0
                for match in pattern.finditer(chunk):
                    if match.start() > at:
                        pieces.append((start + at, start + match.start()))
                    if match.end() > match.start():
                        pieces.append((start + match.start(), start + match.end()))
                    at = match.end()
                if at < len(chunk):
                    pieces.append((start + at, end))
            bounds = pieces
        return [text[a:b] for a, b in bounds]

    def words(self, text: str) -> list[str]:
        """The byte-encoded words of ``text`` (each UTF-8 byte as GPT-2's printable character)."""
        table = self._bytes
        return ["".join(table[b] for b in word.encode("utf-8", "surrogatepass")) for word in self.split(text)]
