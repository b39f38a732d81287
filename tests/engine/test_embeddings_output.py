"""The engine reads exactly what llama.cpp stores for a pooled sequence: n_embd_out values for an
embedding model (n_embd unless the GGUF says otherwise), n_cls_out scores for a reranker; reading
n_embd there would run past the buffer."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llamarun.engine import Batch, Context, Model
from llamarun.types import ContextOptions
from tinymodel import write_tiny_gguf


@pytest.mark.parametrize(("pooling", "n_embd_out", "size"),
                         [(gguf.PoolingType.MEAN, None, 64), (gguf.PoolingType.MEAN, 16, 16),
                          (gguf.PoolingType.RANK, None, 1)])
def test_pooled_output_has_the_size_llama_cpp_stores(tmp_path: Path, pooling: gguf.PoolingType,
                                                     n_embd_out: int | None, size: int) -> None:
    path = write_tiny_gguf(tmp_path / "pooled.gguf", pooling=pooling, n_embd_out=n_embd_out)
    options = ContextOptions(n_ctx=64, n_batch=64, n_ubatch=64, n_seq_max=1, n_threads=1, embeddings=True)
    with Model(path) as model, Context(model, options) as ctx, Batch(64, 1) as batch:
        assert ctx.pooling_type == int(pooling)
        for pos, token in enumerate(model.tokenize("a few words", add_special=True)):
            batch.add(token, pos, 0, True)
        ctx.decode(batch)
        out = ctx.embeddings(0)
    assert out.shape == (size,) and out.dtype == np.float32
