"""The official ``ollama`` client against `llamarun serve --backend numpy`: a subset of tests/http's tests.

Left out: JSON format, tools (they need llama.cpp's grammar sampler, which the NumPy backend
refuses with a typed error), model reloads, copies and pulls (store mechanics that do not
depend on the engine).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "http"))

from test_ollama_client import (  # noqa: F401 - collected here, against the numpy server
    client,
    test_embed,
    test_errors,
    test_generate_and_chat_answer,
    test_length_limit_and_raw,
    test_list_show_ps,
    test_streaming_generate_and_chat,
)


def test_a_grammar_request_is_refused_with_a_typed_error(client):  # noqa: F811 - the fixture
    import ollama
    import pytest

    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="smollm2", messages=[{"role": "user", "content": "a city as JSON"}],
                    format={"type": "object"}, options={"num_predict": 8})
    assert caught.value.status_code == 400 and "grammar" in str(caught.value)
