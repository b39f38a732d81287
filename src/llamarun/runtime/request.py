"""What a caller asks for (GenerationRequest) and the status of its request."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InvalidParameterError
from ..types import PromptSegments, SamplingParams
from .speculative import Speculation

__all__ = ["MAX_STREAM_INTERVAL", "GenerationRequest", "RequestStatus"]

_MAX_STOPS = 16
_MAX_STOP_LEN = 512
MAX_STREAM_INTERVAL = 1 << 24  # as many tokens as any request may generate: only the first chunk and the end


class RequestStatus(enum.IntEnum):
    """Ordered: a request only moves forward (preemption moves RUNNING back to WAITING)."""

    WAITING = 0
    RUNNING = 1
    FINISHED_STOPPED = 2
    FINISHED_LENGTH = 3
    FINISHED_CANCELLED = 4
    FINISHED_DEADLINE = 5
    FINISHED_ERROR = 6

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.FINISHED_STOPPED


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt (text, token ids or segments) and how to continue it.

    A text prompt is tokenized with ``parse_special``; a
    :class:`~llamarun.types.PromptSegments` prompt (a chat template's output)
    part by part, each with its own flag, and ``parse_special`` is not used.

    ``max_tokens=None`` generates until an end-of-generation token, a stop
    string, or the end of the request's context.  ``timeout`` (seconds) sets a
    deadline counted from submission.  ``truncate`` allows dropping the middle
    of an over-long prompt (keeping the first ``n_keep`` tokens and the most
    recent ones); without it an over-long prompt is a ContextOverflowError.
    ``stream_interval`` is how many generated tokens one streamed chunk holds:
    the first token comes alone and at once, later ones in chunks of that
    many, and whatever is held goes out at the end (1: a chunk per token).
    ``speculative``: this request's speculative decoding (None: the model's settings).
    """

    prompt: str | Sequence[int] | PromptSegments
    max_tokens: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    add_special: bool = True
    parse_special: bool = True
    timeout: float | None = None
    priority: int = 0
    truncate: bool = False
    n_keep: int = 0
    logprobs: int = 0
    stream_interval: int = 1
    speculative: Speculation | None = None

    def __post_init__(self) -> None:
        if isinstance(self.prompt, (str, PromptSegments)):
            pass
        elif not all(isinstance(t, int) and not isinstance(t, bool) for t in self.prompt):
            raise InvalidParameterError("prompt must be a string or a list of token ids", field="prompt")
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not 0 <= self.max_tokens <= 1 << 24):
            raise InvalidParameterError(f"max_tokens must be between 0 and {1 << 24}", field="max_tokens")
        if isinstance(self.stop, str) or len(self.stop) > _MAX_STOPS or any(
                not isinstance(s, str) or len(s) > _MAX_STOP_LEN for s in self.stop):
            raise InvalidParameterError(
                f"stop must be a list of at most {_MAX_STOPS} strings of at most {_MAX_STOP_LEN} characters",
                field="stop")
        if self.timeout is not None and (not math.isfinite(self.timeout) or self.timeout <= 0 or self.timeout > 1e7):
            raise InvalidParameterError("timeout must be a positive number of seconds", field="timeout")
        if not -1000 <= self.priority <= 1000:
            raise InvalidParameterError("priority must be between -1000 and 1000", field="priority")
        if not 0 <= self.n_keep <= 1 << 24:
            raise InvalidParameterError("n_keep must be >= 0", field="n_keep")
        if type(self.stream_interval) is not int or not 1 <= self.stream_interval <= MAX_STREAM_INTERVAL:
            raise InvalidParameterError(f"stream_interval must be between 1 and {MAX_STREAM_INTERVAL}",
                                        field="stream_interval")
        if not 0 <= self.logprobs <= 20:
            raise InvalidParameterError("logprobs must be between 0 and 20", field="logprobs")
