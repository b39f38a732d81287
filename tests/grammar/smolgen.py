"""Greedy generation straight through the engine, for the grammar and tool-call tests.

A stand-in until ``llamarun.load(...).generate`` exists: one context, one
sequence, the prompt decoded in chunks, then one token per decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llamarun.engine import Batch, Context, Detokenizer, Model, SamplerChain
from llamarun.types import ContextOptions, SamplingParams


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str  # "stop" (end of generation) or "length"


class SmolGenerator:
    """Owns a model and a context; ``generate`` is greedy, optionally grammar-constrained."""

    def __init__(self, path: str | Path, *, n_ctx: int = 2048) -> None:
        self.model = Model(path)
        self.context = Context(self.model, ContextOptions(n_ctx=n_ctx, n_batch=512, n_threads=2))
        self.batch = Batch(512, 1)

    def generate(self, prompt: str, *, grammar: str | None = None, max_tokens: int = 64) -> Generated:
        model, ctx, batch = self.model, self.context, self.batch
        ctx.clear_memory()
        bos = model.vocab.piece(model.vocab.bos, special=True).decode() if model.vocab.bos >= 0 else ""
        tokens = model.tokenize(prompt, add_special=not (bos and prompt.startswith(bos)), parse_special=True)
        sampler = SamplerChain(model, SamplingParams(temperature=0.0, grammar=grammar))
        detok = Detokenizer(model.vocab)
        index = -1
        for start in range(0, len(tokens), batch.capacity):
            batch.clear()
            index = batch.add_tokens(tokens[start:start + batch.capacity], start, 0)
            ctx.decode(batch)
        pos, out = len(tokens), []
        try:
            for _ in range(max_tokens):
                token = sampler.sample(ctx, index)
                if model.vocab.is_eog(token):
                    return Generated("".join(out) + detok.flush(), "stop")
                out.append(detok.push(token))
                batch.clear()
                index = batch.add(token, pos, 0, True)
                pos += 1
                ctx.decode(batch)
            return Generated("".join(out) + detok.flush(), "length")
        finally:
            sampler.close()

    def close(self) -> None:
        self.batch.close()
        self.context.close()
        self.model.close()
