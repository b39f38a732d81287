"""Request bodies of OpenAI's API (the parts a local server can honour), range-checked.

Unknown top-level fields are kept (``extra="allow"``) and named in the
``X-Llamarun-Ignored-Fields`` response header (:mod:`llamarun.http.ignored`);
fields we know but cannot honour (images, audio, ``best_of``, ``echo``) are
refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...serving.options import SpeculativeOptions

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "EmbeddingRequest",
    "SamplingFields",
    "StreamOptions",
]

MAX_TOKENS = 1 << 24
MAX_N = 16


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Request(BaseModel):
    """A top-level request body: unknown fields are kept to be reported, not dropped unseen."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class StreamOptions(_Body):
    include_usage: bool = False


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = Field(None, max_length=256)
    reasoning_content: str | None = None


def _check_logit_bias(value: dict[str, float] | None) -> dict[str, float] | None:
    if value is None:
        return None
    if len(value) > 1024:
        raise ValueError("at most 1024 logit_bias entries")
    for key, bias in value.items():
        if not key.isdigit() or len(key) > 9:
            raise ValueError(f"logit_bias keys must be token ids, got {key[:20]!r}")
        if not -100.0 <= bias <= 100.0:
            raise ValueError(f"logit_bias values must be between -100 and 100, got {bias}")
    return value


class SamplingFields(_Request):
    """Fields shared by chat and text completions (plus llama-server/vLLM extensions)."""

    model: str = Field(..., min_length=1, max_length=300)
    max_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # extensions accepted by llama-server and vLLM
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, ge=0.0, le=100.0)
    ignore_eos: bool = False
    speculative: SpeculativeOptions | None = None
    timeout: float | None = Field(None, gt=0.0, le=1e7)
    truncate: bool = False
    keep_alive: str | float | None = None
    # llama-server's constraints (one of these or response_format)
    grammar: str | None = Field(None, description="GBNF grammar the output must match (llama-server's field)")
    json_schema: dict[str, Any] | None = Field(None, description="JSON schema the output must match "
                                               "(llama-server's field)")

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return _check_logit_bias(value)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    template_name: str | None = Field(None, max_length=64, description="One of llama.cpp's built-in chat templates "
                                      "(chatml, llama3, gemma, ...) instead of the model's own (llamarun's extension).")
    # OpenAI fields a local server cannot honour: a 400 naming them when set
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    store: bool | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]] = ""
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    best_of: int | None = Field(None, ge=1, le=MAX_N)
    suffix: str | None = None
    response_format: dict[str, Any] | None = None


class EmbeddingRequest(_Request):
    model: str = Field(..., min_length=1, max_length=300)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=1 << 16)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 2048:
            raise ValueError("at most 2048 inputs per request")
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        return value
