"""Tokenize/detokenize round trips and the incremental detokenizer."""

from __future__ import annotations

import pytest

from llamarun.engine import Detokenizer, Model

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "emoji: 😀🎉👩‍👩‍👧‍👦 done",
    "中文字符和日本語のテキスト",
    "mixed: café ñandú 😀 東京 — \"quotes\" and\ttabs\nnewlines",
    "",
]


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def model(request, tiny_model_path, smollm2_path):
    path = tiny_model_path if request.param == "tiny" else smollm2_path
    with Model(path) as m:
        yield m


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(model, text):
    tokens = model.tokenize(text, add_special=False)
    assert model.detokenize(tokens) == text


@pytest.mark.parametrize("text", TEXTS)
def test_streaming_detokenizer_concatenates_to_full_text(model, text):
    tokens = model.tokenize(text, add_special=False)
    detok = Detokenizer(model.vocab)
    pieces = [detok.push(t) for t in tokens] + [detok.flush()]
    assert "".join(pieces) == model.detokenize(tokens)
    assert all("\ufffd" not in p for p in pieces)


def test_multibyte_character_split_across_tokens_is_held_back(tiny_model_path):
    with Model(tiny_model_path) as model:
        tokens = model.tokenize("😀", add_special=False)
        assert len(tokens) == 4  # byte-level vocabulary: one token per UTF-8 byte
        detok = Detokenizer(model.vocab)
        assert [detok.push(t) for t in tokens] == ["", "", "", "😀"]


def test_metadata(smollm2_path):
    with Model(smollm2_path) as model:
        info = model.info
        assert info.architecture == "llama"
        assert 130e6 < info.n_params < 140e6
        assert info.quantization == "Q4_1"
        assert info.n_ctx_train == 8192
        assert info.n_vocab == 49152
        assert "<|im_start|>" in (info.chat_template or "")
        assert info.metadata["general.architecture"] == "llama"
        assert model.vocab.is_eog(model.tokenize("<|im_end|>", add_special=False, parse_special=True)[0])
