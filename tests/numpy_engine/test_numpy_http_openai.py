"""The official ``openai`` client against `llamarun serve --backend numpy`: a subset of tests/http's tests.

Left out: JSON schema response formats and forced tools (llama.cpp's grammar sampler).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "http"))

from test_openai_client import (  # noqa: F401 - collected here, against the numpy server
    client,
    test_chat_completion,
    test_chat_streaming_with_usage_and_cached_tokens,
    test_completions,
    test_embeddings,
    test_errors_in_openai_shape,
    test_models,
    test_n_choices_and_logprobs,
)
