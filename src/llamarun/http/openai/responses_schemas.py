"""The request body of ``POST /v1/responses`` (OpenAI's Responses API), range-checked.

Fields llamarun honours are typed; fields OpenAI defines that a local server cannot honour are
declared too (:data:`UNHONOURED`), so that setting one is a 400 naming it rather than an unknown
field; anything else is kept and named in ``X-Llamarun-Ignored-Fields``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .schemas import MAX_TOKENS

__all__ = ["MAX_INPUT_ITEMS", "UNHONOURED", "ResponseCreateRequest"]

MAX_INPUT_ITEMS = 2048

# OpenAI's fields with no meaning on a local server: refused when set (to anything but null/false)
UNHONOURED = ("access_programs", "background", "background_options", "context_management", "conversation",
              "image", "moderation", "prompt", "prompt_cache_options", "max_tool_calls")


class ResponseCreateRequest(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str = Field(..., min_length=1, max_length=300)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    previous_response_id: str | None = Field(None, min_length=1, max_length=128)
    store: bool = True
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    include: list[str] | None = Field(None, max_length=16)
    truncation: Literal["auto", "disabled"] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = Field(None, max_length=512)
    safety_identifier: str | None = Field(None, max_length=512)
    prompt_cache_key: str | None = Field(None, max_length=512)
    prompt_cache_retention: str | None = Field(None, max_length=32)
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    # known, not honoured (UNHONOURED)
    access_programs: Any = None
    background: bool | None = None
    background_options: Any = None
    context_management: Any = None
    conversation: Any = None
    image: Any = None
    moderation: Any = None
    prompt: Any = None
    prompt_cache_options: Any = None
    max_tool_calls: int | None = None
    # extensions accepted by llama-server and vLLM
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, ge=0.0, le=100.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    timeout: float | None = Field(None, gt=0.0, le=1e7)
    keep_alive: str | float | None = None

    @field_validator("input")
    @classmethod
    def _items(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_INPUT_ITEMS:
            raise ValueError(f"at most {MAX_INPUT_ITEMS} input items, got {len(value)}")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and (len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())):
            raise ValueError("at most 16 metadata pairs, keys up to 64 and values up to 512 characters")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences")
        return value
