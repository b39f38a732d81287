"""How a turn ended, as every frontend reports it: errors for cancelled or failed generations, and
the protocol codes of any exception (the table is :data:`llamarun.errors.ERROR_CODES`)."""

from __future__ import annotations

from ..errors import ERROR_CODES, ErrorCodes, LlamarunError, RequestCancelledError, codes_of_class
from ..types import FinishReason, GenerationResult
from .cancel import CallerGone

__all__ = ["GONE_CODES", "INTERNAL_CODES", "check_finished", "codes_of"]

GONE_CODES = ErrorCodes(499, "CANCELLED", "cancelled")
"""A caller that left (nobody reads the answer; HTTP logs 499)."""

INTERNAL_CODES = ERROR_CODES[LlamarunError]
"""Anything not raised on purpose: a bug, reported without its details."""


def codes_of(exc: BaseException) -> ErrorCodes:
    """The protocol codes for ``exc``: from the table for llamarun's errors, else gone or internal."""
    if isinstance(exc, LlamarunError):
        return codes_of_class(type(exc))
    if isinstance(exc, CallerGone):
        return GONE_CODES
    return INTERNAL_CODES


def check_finished(result: GenerationResult) -> None:
    """Turn a cancellation or error ending into the matching error.

    A deadline is not an error: the partial text is answered with a deadline finish reason
    (Ollama ``done_reason: "deadline"``, OpenAI ``finish_reason: "length"``), as the library returns it.
    """
    if result.finish_reason is FinishReason.CANCELLED:
        raise RequestCancelledError("the request was cancelled (the server may be shutting down)")
    if result.finish_reason is FinishReason.ERROR:
        raise LlamarunError(result.error or "generation failed")
