"""A pre-encoded SSE chunk gives the bytes of encoding the whole chunk, whatever the text."""

from __future__ import annotations

import pytest

from llamarun.http.streaming import SseTemplate, sse


@pytest.mark.parametrize("text", ["", "Hello", " wörld ✓ 中文 🚀", 'quote " and \\ backslash', "line\nbreak\ttab\r",
                                  "\x00\x1f control", "\u2028\u2029 separators", "</script>"])
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
