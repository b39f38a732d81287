"""Plain value types shared by every layer: parameters in, results out."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidParameterError

__all__ = [
    "KV_CACHE_TYPES",
    "Chunk",
    "ContextOptions",
    "FinishReason",
    "GenerationResult",
    "PromptSegments",
    "SamplingParams",
    "Timings",
    "TokenLogprob",
    "check_kv_cache_types",
]

_MAX_SEED = 2**32 - 1


class FinishReason(str, enum.Enum):
    """Why a generation ended; frontends map these to their protocols."""

    STOP = "stop"  # end-of-generation token or a stop string
    LENGTH = "length"  # max_tokens reached or context exhausted
    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    ERROR = "error"


@dataclass(frozen=True)
class PromptSegments:
    """Prompt text in parts that are tokenized separately and concatenated.

    ``special`` parts (a chat template's own text) are tokenized with
    control-token parsing, so ``<|im_start|>`` written by the template is that
    token; the other parts (text a client supplied) never are: there
    ``<|im_start|>`` is plain text.  ``text`` is the whole prompt.
    """

    parts: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)

    @property
    def has_plain(self) -> bool:
        """Whether some part is tokenized without control-token parsing."""
        return any(not special for _, special in self.parts)


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}", field=name)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be between {lo} and {hi}, got {value!r}", field=name)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``temperature == 0`` means greedy.

    Defaults follow Ollama's (temperature 0.8, top_k 40, top_p 0.9, repeat_last_n 64).
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_last_n: int = 64
    seed: int | None = None
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    grammar: str | None = None

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 100.0)
        _check_range("top_k", self.top_k, 0, 1_000_000)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        _check_range("min_p", self.min_p, 0.0, 1.0)
        _check_range("typical_p", self.typical_p, 0.0, 1.0)
        _check_range("repeat_penalty", self.repeat_penalty, 0.0, 100.0)
        _check_range("presence_penalty", self.presence_penalty, -100.0, 100.0)
        _check_range("frequency_penalty", self.frequency_penalty, -100.0, 100.0)
        _check_range("repeat_last_n", self.repeat_last_n, -1, 1_000_000)
        _check_range("mirostat", self.mirostat, 0, 2)
        _check_range("mirostat_tau", self.mirostat_tau, 0.0, 100.0)
        _check_range("mirostat_eta", self.mirostat_eta, 0.0, 10.0)
        if self.seed is not None:
            _check_range("seed", self.seed, -(2**63), 2**63 - 1)
        for token, bias in self.logit_bias.items():
            if isinstance(token, bool) or not isinstance(token, int) or token < 0:
                raise InvalidParameterError(f"logit_bias keys must be token ids, got {token!r}", field="logit_bias")
            if not isinstance(bias, (int, float)) or math.isnan(bias):
                raise InvalidParameterError(f"logit_bias values must be numbers, got {bias!r}", field="logit_bias")

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0.0 and self.mirostat == 0

    @property
    def native_seed(self) -> int:
        """Seed as llama.cpp takes it (uint32; 0xFFFFFFFF means random)."""
        if self.seed is None or self.seed < 0:
            return _MAX_SEED
        return self.seed % _MAX_SEED


# The KV-cache element types llama.cpp accepts (llama-server's -ctk/-ctv); f16 is its default.
KV_CACHE_TYPES = ("f16", "f32", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
_UNQUANTIZED_KV = ("f16", "f32", "bf16")


def check_kv_cache_types(type_k: str, type_v: str, flash_attn: bool | None, *,
                         names: tuple[str, str, str] = ("type_k", "type_v", "flash_attn")) -> None:
    """Refuse an unknown KV-cache type, and a quantized V cache with flash attention off: llama.cpp
    stores V transposed without flash attention, which quantized types cannot be, and refuses the
    context (auto flash attention, None, is on for the CPU).  ``names``: the caller's spellings."""
    for name, value in zip(names[:2], (type_k, type_v)):
        if value not in KV_CACHE_TYPES:
            raise InvalidParameterError(f"{name} must be one of {', '.join(KV_CACHE_TYPES)}, got {value!r}",
                                        field=name)
    if flash_attn is False and type_v not in _UNQUANTIZED_KV:
        raise InvalidParameterError(
            f"{names[1]} {type_v} (a quantized V cache) needs flash attention, which is off ({names[2]}): "
            f"turn flash attention on or leave it automatic, or use {names[1]} f16", field=names[1])


@dataclass(frozen=True)
class ContextOptions:
    """Sizes and threads of a llama.cpp context (0 or None = choose automatically)."""

    n_ctx: int = 0
    n_batch: int = 512
    n_ubatch: int = 512
    n_seq_max: int = 1
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_gpu_layers: int = 0
    flash_attn: bool | None = None
    embeddings: bool = False
    use_mmap: bool = True
    kv_unified: bool = False
    type_k: str = "f16"  # KV-cache element types (KV_CACHE_TYPES); a quantized V needs flash attention
    type_v: str = "f16"

    def __post_init__(self) -> None:
        check_kv_cache_types(self.type_k, self.type_v, self.flash_attn)
        _check_range("n_ctx", self.n_ctx, 0, 1 << 22)
        _check_range("n_batch", self.n_batch, 1, 1 << 16)
        _check_range("n_ubatch", self.n_ubatch, 1, 1 << 16)
        _check_range("n_seq_max", self.n_seq_max, 1, 256)
        _check_range("n_gpu_layers", self.n_gpu_layers, -1, 100_000)
        for name in ("n_threads", "n_threads_batch"):
            value = getattr(self, name)
            if value is not None:
                _check_range(name, value, 1, 1024)


@dataclass(frozen=True)
class Timings:
    """Durations in seconds and token counts of one generation."""

    load_s: float = 0.0
    prompt_s: float = 0.0
    generate_s: float = 0.0
    total_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    drafted_tokens: int = 0  # speculative decoding: tokens drafted, and of those kept
    accepted_tokens: int = 0

    @property
    def prompt_tokens_per_s(self) -> float:
        computed = self.prompt_tokens - self.cached_tokens
        return computed / self.prompt_s if self.prompt_s > 0 else 0.0

    @property
    def generate_tokens_per_s(self) -> float:
        return self.generated_tokens / self.generate_s if self.generate_s > 0 else 0.0


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of a generated token under the model, with the top alternatives."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of streamed output: new text and the tokens that made it."""

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: FinishReason | None = None
    timings: Timings | None = None
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    """A whole generation: text, counts, why it ended and how long it took."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    timings: Timings
    prompt_tokens: int = 0
    cached_tokens: int = 0
    truncated: bool = False
    error: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()  # per generated token, when the request asked for them

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)
