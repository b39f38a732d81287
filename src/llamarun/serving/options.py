"""The options every generating frontend accepts: Ollama's ``options`` vocabulary, range-checked.

Ollama's option names (``temperature``, ``num_predict``, ``num_ctx``, ...) are
what most local clients already send; the HTTP Ollama API, the gRPC service and
the socket bridge all validate a request's options with :class:`Options`.
Unknown keys are accepted and logged (Ollama warns and ignores them); wrong
types and out-of-range values are errors naming the field.
"""

from __future__ import annotations

import logging

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..runtime.speculative import Speculation

__all__ = ["MAX_CTX", "MAX_TOKENS", "Options", "SpeculativeOptions"]

logger = logging.getLogger(__name__)

MAX_TOKENS = 1 << 24
MAX_CTX = 1 << 20

# Ollama options that change nothing here (GPU placement, memory mapping, legacy knobs): silently accepted.
_ACCEPTED = {"numa", "main_gpu", "use_mmap", "use_mlock", "low_vram", "vocab_only", "f16_kv", "logits_all",
             "penalize_newline", "tfs_z", "num_gqa", "rope_frequency_base", "rope_frequency_scale"}


class SpeculativeOptions(BaseModel):
    """``speculative``: speculative decoding for this request (left out: the model's settings)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["off", "ngram", "draft"] | None = None
    n_max: int | None = Field(None, ge=0, le=64)
    draft_model: str | None = Field(None, min_length=1, max_length=1000)

    def speculation(self) -> Speculation:
        return Speculation(type=self.type, n_max=self.n_max, draft_model=self.draft_model)


class Options(BaseModel):
    """``options`` of generate/chat/embed: sampling, length and load settings."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    num_keep: int | None = Field(None, ge=-1, le=MAX_TOKENS)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    num_predict: int | None = Field(None, ge=-2, le=MAX_TOKENS)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_last_n: int | None = Field(None, ge=-1, le=MAX_CTX)
    temperature: float | None = Field(None, ge=0.0, le=100.0)
    repeat_penalty: float | None = Field(None, ge=0.0, le=100.0)
    presence_penalty: float | None = Field(None, ge=-100.0, le=100.0)
    frequency_penalty: float | None = Field(None, ge=-100.0, le=100.0)
    mirostat: int | None = Field(None, ge=0, le=2)
    mirostat_tau: float | None = Field(None, ge=0.0, le=100.0)
    mirostat_eta: float | None = Field(None, ge=0.0, le=10.0)
    stop: list[str] | str | None = Field(None, max_length=16)
    num_ctx: int | None = Field(None, ge=16, le=MAX_CTX)
    num_batch: int | None = Field(None, ge=1, le=1 << 16)
    num_gpu: int | None = Field(None, ge=-1, le=100_000)
    num_thread: int | None = Field(None, ge=0, le=1024)
    timeout: float | None = Field(None, gt=0.0, le=1e7, description="Seconds before generation stops (the partial "
                                  "text is answered with done_reason \"deadline\").")
    ignore_eos: bool | None = None
    speculative: SpeculativeOptions | None = None

    @model_validator(mode="after")
    def _warn_unknown(self) -> Options:
        unknown = sorted(set(self.model_extra or ()) - _ACCEPTED)
        if unknown:
            logger.warning("ignoring unknown option(s): %s", ", ".join(unknown))
        return self
