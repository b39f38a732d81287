"""The NumPy backend's tokenizer gives llama.cpp's ids, and detokenizes byte for byte as llama.cpp."""

from __future__ import annotations

import pytest
from numpy_corpus import corpus

from llamarun import engine
from llamarun import numpy_engine as ne


def _compare(theirs, ours, texts, parse_special):
    mismatches = []
    for text in texts:
        a = theirs.tokenize(text, add_special=True, parse_special=parse_special)
        b = ours.tokenize(text, add_special=True, parse_special=parse_special)
        if a != b:
            mismatches.append((text, a, b))
        elif theirs.detokenize(a, special=parse_special) != ours.detokenize(a, special=parse_special):
            mismatches.append((text, "detokenize", ours.detokenize(a, special=parse_special)))
    return mismatches


@pytest.mark.parametrize("parse_special", [False, True])
def test_smollm2_ids_match_llama_cpp(smol_llama, smol_numpy, parse_special):
    texts = corpus(3000)
    mismatches = _compare(smol_llama.vocab, smol_numpy.vocab, texts, parse_special)
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]!r}"


@pytest.mark.parametrize("parse_special", [False, True])
def test_sentencepiece_ids_match_llama_cpp(variant, parse_special):
    path = variant(vocab="spm")
    texts = corpus(2000, seed=7)
    mismatches = _compare(engine.Model(path).vocab, ne.Model(path).vocab, texts, parse_special)
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]!r}"


def test_every_piece_and_special_token_fact_matches(smol_llama, smol_numpy):
    theirs, ours = smol_llama.vocab, smol_numpy.vocab
    assert (ours.n_tokens, ours.bos, ours.eos, ours.eot, ours.add_bos) == (
        theirs.n_tokens, theirs.bos, theirs.eos, theirs.eot, theirs.add_bos)
    for token in range(theirs.n_tokens):
        for special in (False, True):
            assert ours.piece(token, special=special) == theirs.piece(token, special=special), token
        assert ours.is_eog(token) == theirs.is_eog(token), token
        assert ours.is_control(token) == theirs.is_control(token), token
    assert ours.control_texts() == theirs.control_texts()


def test_detokenize_is_byte_exact_for_split_characters(smol_llama, smol_numpy):
    """Emoji and CJK split across byte tokens: pieces, the incremental detokenizer and the whole agree."""
    tokens = smol_llama.tokenize("👨‍👩‍👧‍👦 漢字 e\u0301 🇫🇷", add_special=False)
    assert b"".join(smol_numpy.vocab.piece(t) for t in tokens) == b"".join(smol_llama.vocab.piece(t) for t in tokens)
    detok = engine.Detokenizer(smol_numpy.vocab)
    streamed = "".join(detok.push(t) for t in tokens) + detok.flush()
    assert streamed == smol_llama.detokenize(tokens) == smol_numpy.detokenize(tokens)
