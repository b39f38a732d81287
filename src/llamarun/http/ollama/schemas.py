"""Request bodies of Ollama's API (api/types.go), every number range-checked.

Unknown keys in ``options`` are accepted and logged (Ollama warns and ignores
them); unknown top-level fields are kept and named in the ``X-Llamarun-Ignored-Fields``
response header; wrong types and out-of-range values are 400 errors naming the field.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...serving.options import MAX_CTX, Options

__all__ = [
    "ChatRequest",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "Message",
    "Options",
    "PullRequest",
    "ShowRequest",
]

logger = logging.getLogger(__name__)

class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)


class _Request(BaseModel):
    """A top-level request body: unknown fields are kept to be reported (``X-Llamarun-Ignored-Fields``)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)


KeepAlive = str | float | None


class _ModelBody(_Request):
    model: str = Field(..., min_length=1, max_length=300)
    keep_alive: KeepAlive = Field(None, description="'5m', seconds, 0 to unload, negative to keep loaded")
    options: Options | None = None

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _keep_alive(cls, value: Any) -> Any:
        from ...config import parse_keep_alive

        if value is None or value == "":
            return None
        try:
            return parse_keep_alive(value)  # negative: forever; above 1e9 s refused
        except ValueError as exc:
            raise ValueError(str(exc)) from None


_TEMPLATE_NAME = Field(None, max_length=64, description="One of llama.cpp's built-in chat templates (chatml, "
                       "llama3, gemma, mistral-v7 ...) instead of the model's own (llamarun's extension).")


class GenerateRequest(_ModelBody):
    prompt: str = ""
    template_name: str | None = _TEMPLATE_NAME
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = Field(None, max_length=MAX_CTX)
    stream: bool = True
    raw: bool = False
    format: str | dict[str, Any] | None = None
    images: list[str] | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20)
    timeout: float | None = Field(None, gt=0.0, le=1e7, description="Seconds before generation stops "
                                  "(the partial text is answered with done_reason \"deadline\"); options.timeout wins.")


class ToolFunctionCall(_Body):
    name: str = Field(..., max_length=256)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCall(_Body):
    function: ToolFunctionCall
    id: str | None = None
    type: str | None = None


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ChatRequest(_ModelBody):
    messages: list[Message] = Field(default_factory=list)
    template_name: str | None = _TEMPLATE_NAME
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    stream: bool = True
    format: str | dict[str, Any] | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20)
    timeout: float | None = Field(None, gt=0.0, le=1e7, description="Seconds before generation stops "
                                  "(the partial text is answered with done_reason \"deadline\"); options.timeout wins.")


class EmbedRequest(_ModelBody):
    input: str | list[str] = Field(..., description="text or list of texts")
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1, le=1 << 16)

    @field_validator("input")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 2048:
            raise ValueError("at most 2048 inputs per request")
        return value


class EmbeddingsRequest(_ModelBody):
    prompt: str = ""


class _NamedBody(_Request):
    """A body whose model may come as the legacy ``name`` field (older Ollama clients)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" not in data and "name" in data:
            named = {**data, "model": data["name"]}
            if "name" not in cls.model_fields:  # taken as the model, not an unknown field
                del named["name"]
            return named
        return data


class PullRequest(_NamedBody):
    model: str = Field(..., min_length=1, max_length=2048, validation_alias="model")
    name: str | None = None
    insecure: bool = False
    stream: bool = True


class ShowRequest(_NamedBody):
    model: str = Field(..., min_length=1, max_length=300)
    verbose: bool = False


class DeleteRequest(ShowRequest):
    pass


class CopyRequest(_Request):
    source: str = Field(..., min_length=1, max_length=300)
    destination: str = Field(..., min_length=1, max_length=300)


class CreateRequest(_NamedBody):
    model: str = Field(..., min_length=1, max_length=300)
    from_: str | None = Field(None, alias="from", max_length=2048)
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    stream: bool = True
    quantize: str | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    modelfile: str | None = None
