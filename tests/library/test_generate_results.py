"""The library's whole results carry what the streamed chunks carry (tiny model)."""

from __future__ import annotations

import llamarun
from llamarun.api import build_request
from llamarun.runtime import SyncClient


def test_generate_without_streaming_returns_logprobs(tiny_model_path) -> None:
    with llamarun.load(tiny_model_path, n_ctx=256, n_slots=1, n_threads=2) as model:
        result = model.generate("x", max_tokens=6, logprobs=2, ignore_eos=True, temperature=0)
        assert len(result.logprobs) == result.completion_tokens == 6
        assert [lp.token for lp in result.logprobs] == list(result.token_ids)
        assert all(len(lp.top) == 2 and lp.logprob <= 0 for lp in result.logprobs)
        spec = build_request("x", 6, {"logprobs": 2, "ignore_eos": True, "temperature": 0})
        with SyncClient(model.runtime).stream(spec) as handle:
            streamed = handle.wait()
        assert [lp.token for lp in streamed.logprobs] == list(streamed.token_ids)
        plain = model.generate("x", max_tokens=3, ignore_eos=True)
        assert plain.logprobs == ()
