"""Sampling options -> :class:`GenerationRequest` and :class:`LoadOptions`, for every frontend.

Two vocabularies, two sets of defaults for what a request leaves out:

- :func:`options_request`: Ollama's ``options`` (:class:`Options`), used by the
  Ollama API, the gRPC service and the socket bridge. Left out: the model's
  recommendations (Modelfile, catalog, GGUF ``general.sampling.*``), else
  Ollama's defaults.
- :func:`spec_request`: the explicit fields of OpenAI-style APIs
  (:class:`SpecSampling`). Left out: the GGUF's recommendations (as
  llama-server does), else the specification's defaults (temperature 1, top_p
  1, no top-k, no penalties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..runtime import MODELFILE_LOAD_NAMES, GenerationRequest, LoadOptions, declared_sampling, default_sampling
from ..runtime.speculative import Speculation
from ..types import PromptSegments, SamplingParams
from .options import Options

__all__ = ["SpecSampling", "load_options", "options_request", "spec_request", "stops", "with_modelfile_options"]

Prompt = str | Sequence[int] | PromptSegments

_OPTION_SAMPLING = ("top_k", "top_p", "min_p", "typical_p", "repeat_last_n", "temperature", "repeat_penalty",
                    "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "seed")

# declared GGUF values the explicit fields have no spelling for (they have temperature, top_p, top_k, ...)
_DECLARED_ONLY = ("repeat_last_n", "mirostat", "mirostat_tau", "mirostat_eta")

# A Modelfile's load parameters are the model's own settings (the manager loads it with them,
# :class:`~llamarun.runtime.ModelSource`), never options the request asked for.
_MODEL_LOAD_PARAMETERS = frozenset(MODELFILE_LOAD_NAMES.values())

_OPTION_LOAD_LABELS = tuple((ours, f"options.{theirs}") for ours, theirs in MODELFILE_LOAD_NAMES.items())


def stops(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Stop sequences as a tuple (one string or several; empty ones dropped: they would stop at once)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(s for s in value if s)


def with_modelfile_options(options: Options | None, params: Mapping[str, Any]) -> Options | None:
    """A request's ``options`` with the Modelfile's parameters where the request gives none."""
    if not params:
        return options
    base = options or Options()
    return base.model_copy(update={k: v for k, v in params.items()
                                   if k not in _MODEL_LOAD_PARAMETERS and getattr(base, k, None) is None})


def load_options(options: Options | None) -> LoadOptions:
    """The load settings in ``options`` (num_thread 0: no preference); errors name them as sent."""
    if options is None:
        return LoadOptions()
    given = {ours: getattr(options, theirs) for ours, theirs in MODELFILE_LOAD_NAMES.items()}
    if given.get("n_threads") == 0:  # no preference
        given["n_threads"] = None
    return LoadOptions(**given, labels=_OPTION_LOAD_LABELS)


def options_request(prompt: Prompt, options: Options | None, *, grammar: str | None, timeout: float | None,
                    logprobs: int = 0, truncate: bool = False, add_special: bool = True,
                    parse_special: bool = True, stream_interval: int = 1,
                    metadata: Mapping[str, str] | None = None) -> GenerationRequest:
    """Ollama's options; left out: the model's recommendations (``metadata``), else Ollama's
    defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1, repeat_last_n 64)."""
    opts = options or Options()
    explicit = {k: getattr(opts, k) for k in _OPTION_SAMPLING if getattr(opts, k) is not None}
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
        speculative=opts.speculative.speculation() if opts.speculative is not None else None,
    )


@dataclass(frozen=True)
class SpecSampling:
    """The sampling fields an OpenAI-style request gave (None: not given)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    speculative: Speculation | None = None


def spec_request(prompt: Prompt, given: SpecSampling, *, max_tokens: int | None, grammar: str | None,
                 timeout: float | None, stop: Sequence[str] = (), ignore_eos: bool = False,
                 truncate: bool = False, logprobs: int = 0, seed_offset: int = 0, add_special: bool = True,
                 parse_special: bool = True, stream_interval: int = 1,
                 metadata: Mapping[str, str] | None = None) -> GenerationRequest:
    """Left out: the model's GGUF recommendations (``metadata``, as llama-server does), else the
    specification's defaults (temperature 1, top_p 1, no top-k, no penalties)."""
    seed = None if given.seed is None else given.seed + seed_offset
    model = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
             **declared_sampling(metadata or {})}

    def chosen(name: str) -> Any:
        value = getattr(given, name)
        return model[name] if value is None else value

    sampling = SamplingParams(
        **{k: v for k, v in model.items() if k in _DECLARED_ONLY},
        temperature=chosen("temperature"), top_p=chosen("top_p"), top_k=max(0, chosen("top_k")),
        min_p=chosen("min_p"), typical_p=1.0 if given.typical_p is None else given.typical_p,
        repeat_penalty=chosen("repeat_penalty"), presence_penalty=given.presence_penalty or 0.0,
        frequency_penalty=given.frequency_penalty or 0.0, seed=seed, logit_bias=dict(given.logit_bias),
        grammar=grammar,
    )
    return GenerationRequest(
        prompt=prompt, max_tokens=max_tokens, sampling=sampling, stop=tuple(stop), ignore_eos=ignore_eos,
        add_special=add_special, parse_special=parse_special, timeout=timeout, truncate=truncate,
        logprobs=logprobs, stream_interval=stream_interval, speculative=given.speculative,
    )
