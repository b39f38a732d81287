"""A pre-encoded SSE chunk gives the bytes of encoding the whole chunk, whatever the text."""

from __future__ import annotations

import pytest

import json

from llamarun.http.streaming import SseTemplate, ndjson, sse


@pytest.mark.parametrize("text", ["", "Hello", " wörld ✓ 中文 🚀", 'quote " and \\ backslash', "line\nbreak\ttab\r",
                                  "\x00\x1f control", "\u2028\u2029 separators", "</script>", "next\x85line"])
def test_rendered_chunk_is_the_encoded_chunk(text):
    def chunk(value: str) -> dict:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "smöl:latest",
                "choices": [{"index": 0, "delta": {"content": value}, "logprobs": None, "finish_reason": None}]}

    assert SseTemplate(chunk(SseTemplate.hole())).render(text) == sse(chunk(text))


def test_a_template_needs_exactly_one_hole():
    with pytest.raises(ValueError):
        SseTemplate({"a": "no hole"})
    with pytest.raises(ValueError):
        SseTemplate({"a": SseTemplate.hole(), "b": SseTemplate.hole()})


@pytest.mark.parametrize("text", ["a\u2028b", "a\u2029b", "a\x85b", "a\x0bb\x0cc\x1cd\x1de\x1ef", "é\u2028\n"])
def test_streamed_lines_stay_whole_for_any_line_splitter(text):
    """httpx's iter_lines (and the official ollama client reading NDJSON with it) split lines where
    str.splitlines() does, which includes U+0085, U+2028 and U+2029: they must travel escaped."""
    event = {"message": {"content": text}}
    line = ndjson(event).decode()
    assert line.splitlines() == [line[:-1]] and json.loads(line) == event
    data = sse(event).decode()
    assert data.splitlines() == [data[:-2], ""] and json.loads(data[6:]) == event
    rendered = SseTemplate({"content": SseTemplate.hole()}).render(text).decode()
    assert len(rendered.splitlines()) == 2 and json.loads(rendered[6:]) == {"content": text}
