"""A deterministic corpus of a few thousand mixed strings for tokenizer comparisons."""

from __future__ import annotations

import random

_WORDS = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his", "they", "I", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "Hello", "World", "HTTP", "JSON", "naïve", "café", "résumé", "coöperate", "façade", "Zürich", "straße"]
_CODE = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
         "if __name__ == '__main__':\n\tmain()", "SELECT * FROM users WHERE id = 42;", "x = {'a': [1, 2, 3]}",
         "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 1<<10);}", "let s: Vec<u8> = vec![0xFF; 16];",
         "  // comment\n    indented();\r\n", "<div class=\"x\">&amp;&lt;</div>", "$ ls -la | grep '^d' > out.txt"]
_EMOJI = ["🎉", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "🧑‍💻", "✨", "🔥🔥🔥", "🏳️‍🌈", "☕"]
_CJK = ["中文", "日本語のテキスト", "한국어 문장입니다", "漢字かなカナ", "我爱北京天安门", "ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ", "「引用」、句読点。"]
_MARKS = ["e\u0301", "a\u0308\u0304", "नमस्ते दुनिया", "مَرْحَبًا بِالْعَالَم", "สวัสดีครับ", "Ελληνικά", "Привет, мир!",
          "ñ vs n\u0303", "Z\u0351\u0320a\u0352\u0317l\u0350g\u0334o", "עִבְרִית"]
_SPACES = [" ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2003", " \t\n", "        \n"]
_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "im_start|>", "<s>", "</s>", "<unk>",
            "<|im_start|>user\n", "<fim_prefix>", "<repo_name>"]
_CONTRACTIONS = ["I'm", "they've", "we'll", "she'd", "it's", "don't", "YOU'RE", "'S", "o'clock", " ' ", "can ' t"]
_BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
           (0xE00, 0xE7F), (0x2000, 0x206F), (0x2190, 0x23FF), (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
           (0x1F300, 0x1F6FF), (0x1D400, 0x1D4FF)]


def _piece(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice(_CODE)
    if kind == 1:
        return rng.choice(_EMOJI)
    if kind == 2:
        return rng.choice(_CJK)
    if kind == 3:
        return rng.choice(_MARKS)
    if kind == 4:
        return rng.choice(_SPACES) * rng.randint(1, 3)
    if kind == 5:
        return rng.choice(_SPECIAL)
    if kind == 6:
        return rng.choice(_CONTRACTIONS)
    if kind == 7:
        return str(rng.randint(0, 10 ** rng.randint(1, 12))) + rng.choice(["", ".", ",", "%", "$", " 000"])
    if kind == 8:
        lo, hi = rng.choice(_BLOCKS)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6)))
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))


def corpus(n: int = 3000, seed: int = 26) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "a", "\n", "  leading", "trailing  ", "<|im_start|><|im_end|>"]
    while len(texts) < n:
        sep = rng.choice(["", " ", "\n", ""])
        texts.append(sep.join(_piece(rng) for _ in range(rng.randint(1, 5))))
    return texts
