"""Request bodies of Anthropic's Messages API (the parts a local server can honour), range-checked.

Content blocks stay plain objects here: :mod:`.convert` reads them one by one
and names the offending one (``messages.2.content.0.type``) when it cannot take it.
Fields a local server cannot honour with their meaning (``container``,
``mcp_servers``, ``context_management``, ``output_config.effort``) are refused
with a 400 naming them; informational ones (``metadata``, ``service_tier``) are accepted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MAX_BLOCKS", "CountTokensRequest", "Message", "MessagesRequest"]

MAX_TOKENS = 1 << 24
MAX_BLOCKS = 1000  # content blocks in one message (or in the system prompt)
MAX_MESSAGES = 4096
MAX_TOOLS = 128
MAX_STOPS = 32

_REFUSED = ("container", "mcp_servers", "context_management")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def _check_blocks(value: Any, where: str) -> Any:
    if isinstance(value, list) and len(value) > MAX_BLOCKS:
        raise ValueError(f"{where} has {len(value)} content blocks; at most {MAX_BLOCKS}")
    return value


class Message(_Body):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _blocks(cls, value: Any) -> Any:
        return _check_blocks(value, "content")


class _ChatFields(_Body):
    """What a Messages request and a token count share."""

    model: str = Field(..., min_length=1, max_length=300)
    messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    template_name: str | None = Field(None, max_length=64)  # llamarun's: a built-in chat template by name
    # refused (see _REFUSED): present only so that a request naming them is not silently run without them
    container: Any = None
    mcp_servers: Any = None
    context_management: Any = None

    @field_validator("system")
    @classmethod
    def _system_blocks(cls, value: Any) -> Any:
        return _check_blocks(value, "system")

    @model_validator(mode="after")
    def _refused(self) -> _ChatFields:
        for name in _REFUSED:
            if getattr(self, name) not in (None, [], {}):
                raise ValueError(f"{name} is not supported by this server")
        return self


class MessagesRequest(_ChatFields):
    max_tokens: int = Field(..., ge=1, le=MAX_TOKENS)
    stop_sequences: list[str] | None = Field(None, max_length=MAX_STOPS)
    stream: bool = False
    # no longer arguments of the official client (2.x) but still honoured when sent (extra_body, older clients)
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    # llamarun's extensions, as on the OpenAI endpoints
    timeout: float | None = Field(None, gt=0.0, le=1e7)
    keep_alive: str | float | None = None


class CountTokensRequest(_ChatFields):
    pass
