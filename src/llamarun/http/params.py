"""API request fields -> :class:`GenerationRequest` and :class:`LoadOptions`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..runtime import MODELFILE_LOAD_NAMES, GenerationRequest, LoadOptions, declared_sampling, default_sampling
from ..types import PromptSegments, SamplingParams
from .ollama_schemas import Options
from .openai_schemas import SamplingFields

__all__ = ["ollama_load_options", "ollama_request", "openai_request", "stops",
           "with_modelfile_options", "with_modelfile_sampling"]

_OLLAMA_SAMPLING = ("top_k", "top_p", "min_p", "typical_p", "repeat_last_n", "temperature", "repeat_penalty",
                    "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "seed")

# declared GGUF values the OpenAI request has no field for (it has temperature, top_p, top_k, ...)
_DECLARED_ONLY = ("repeat_last_n", "mirostat", "mirostat_tau", "mirostat_eta")


def stops(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(s for s in value if s)


# A Modelfile's load parameters are the model's own settings (the manager loads it with them,
# :class:`~llamarun.runtime.ModelSource`), never options the request asked for.
_MODEL_LOAD_PARAMETERS = frozenset({"num_ctx", "num_thread", "num_batch", "num_gpu"})


def with_modelfile_options(options: Options | None, params: Mapping[str, Any]) -> Options | None:
    """A request's Ollama ``options`` with the Modelfile's parameters where the request gives none."""
    if not params:
        return options
    base = options or Options()
    return base.model_copy(update={k: v for k, v in params.items()
                                   if k not in _MODEL_LOAD_PARAMETERS and getattr(base, k, None) is None})


_OPENAI_FROM_MODELFILE = ("temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty",
                          "presence_penalty", "frequency_penalty", "seed", "stop")


def with_modelfile_sampling(body: Any, params: Mapping[str, Any], *, has_max: bool) -> Any:
    """An OpenAI request body with the Modelfile's parameters where it gives none (``num_predict``
    becomes ``max_tokens`` unless the request sets a limit: ``has_max``)."""
    update = {k: params[k] for k in _OPENAI_FROM_MODELFILE if k in params and getattr(body, k) is None}
    predict = params.get("num_predict")
    if predict is not None and predict >= 0 and not has_max:
        update["max_tokens"] = predict
    return body.model_copy(update=update) if update else body


_OLLAMA_LOAD_LABELS = tuple((ours, f"options.{theirs}") for ours, theirs in MODELFILE_LOAD_NAMES.items())


def ollama_load_options(options: Options | None) -> LoadOptions:
    """Ollama's load options (num_thread 0: no preference); errors name them as the client sent them."""
    if options is None:
        return LoadOptions()
    return LoadOptions(n_ctx=options.num_ctx, n_threads=options.num_thread or None, n_batch=options.num_batch,
                       n_gpu_layers=options.num_gpu, labels=_OLLAMA_LOAD_LABELS)


def ollama_request(prompt: str | Sequence[int] | PromptSegments, options: Options | None, *, grammar: str | None,
                   timeout: float | None, logprobs: int = 0, truncate: bool = False,
                   add_special: bool = True, parse_special: bool = True, stream_interval: int = 1,
                   metadata: Mapping[str, str] | None = None) -> GenerationRequest:
    """Ollama's options; left out: the model's GGUF recommendations (``metadata``), else Ollama's
    defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1, repeat_last_n 64)."""
    opts = options or Options()
    explicit = {k: getattr(opts, k) for k in _OLLAMA_SAMPLING if getattr(opts, k) is not None}
    values: dict[str, Any] = {**default_sampling(metadata or {}), **explicit}
    if values.get("top_k", 0) < 0:
        values["top_k"] = 0
    sampling = SamplingParams(grammar=grammar, **values)
    predict = opts.num_predict
    max_tokens = None if predict is None or predict < 0 else predict
    return GenerationRequest(
        prompt=prompt, max_tokens=max_tokens, sampling=sampling, stop=stops(opts.stop),
        ignore_eos=bool(opts.ignore_eos), add_special=add_special, parse_special=parse_special, timeout=timeout,
        truncate=truncate, n_keep=max(0, opts.num_keep or 0), logprobs=logprobs, stream_interval=stream_interval,
    )


def openai_request(body: SamplingFields, prompt: str | Sequence[int] | PromptSegments, *, max_tokens: int | None,
                   grammar: str | None, timeout: float | None, logprobs: int = 0, seed_offset: int = 0,
                   add_special: bool = True, parse_special: bool = True, stream_interval: int = 1,
                   metadata: Mapping[str, str] | None = None) -> GenerationRequest:
    """Left out: the model's GGUF recommendations (``metadata``, as llama-server does), else OpenAI's
    spec defaults (temperature 1, top_p 1, no top-k, no penalties); llama-server's extensions when given."""
    seed = None if body.seed is None else body.seed + seed_offset
    bias = {int(k): float(v) for k, v in (body.logit_bias or {}).items()}
    model = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
             **declared_sampling(metadata or {})}
    sampling = SamplingParams(
        **{k: v for k, v in model.items() if k in _DECLARED_ONLY},
        temperature=model["temperature"] if body.temperature is None else body.temperature,
        top_p=model["top_p"] if body.top_p is None else body.top_p,
        top_k=model["top_k"] if body.top_k is None else max(0, body.top_k),
        min_p=model["min_p"] if body.min_p is None else body.min_p,
        typical_p=1.0 if body.typical_p is None else body.typical_p,
        repeat_penalty=model["repeat_penalty"] if body.repeat_penalty is None else body.repeat_penalty,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        seed=seed,
        logit_bias=bias,
        grammar=grammar,
    )
    return GenerationRequest(
        prompt=prompt, max_tokens=max_tokens, sampling=sampling, stop=stops(body.stop), ignore_eos=body.ignore_eos,
        add_special=add_special, parse_special=parse_special, timeout=timeout, truncate=body.truncate,
        logprobs=logprobs, stream_interval=stream_interval,
    )
