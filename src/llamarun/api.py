"""The library API: ``llamarun.load(...)`` and the model object it returns."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MODEL
from .engine import ModelInfo
from .errors import InvalidParameterError
from .runtime import (
    PLANNED_FIELDS,
    GenerationRequest,
    Runtime,
    RuntimeConfig,
    SyncClient,
    default_sampling,
    modelfile_load_settings,
    plan_load,
)
from .types import Chunk, GenerationResult, PromptSegments, SamplingParams
from .units import parse_size

if TYPE_CHECKING:
    from .session import Session

__all__ = ["DEFAULT_MAX_TOKENS", "ChatResult", "LoadedModel", "load", "resolve_model", "resolve_model_path"]


class _DefaultMaxTokens(int):
    """The ``max_tokens`` a caller did not give (256, or the model's Modelfile ``num_predict``)."""


DEFAULT_MAX_TOKENS: int = _DefaultMaxTokens(256)
# Modelfile (Ollama) parameter names -> keyword options of generate/chat
_FROM_MODELFILE = MappingProxyType({"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                   "typical_p": "typical_p", "repeat_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n",
                   "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
                   "seed": "seed", "mirostat": "mirostat", "mirostat_tau": "mirostat_tau",
                   "mirostat_eta": "mirostat_eta", "stop": "stop", "num_keep": "n_keep"})

_SAMPLING_FIELDS = frozenset(f.name for f in fields(SamplingParams))
_REQUEST_FIELDS = frozenset({"stop", "ignore_eos", "timeout", "priority", "truncate", "n_keep", "logprobs",
                             "stream_interval", "add_special", "parse_special"})
_CONFIG_FIELDS = {f.name for f in fields(RuntimeConfig)}


def resolve_model_path(name_or_path: str | os.PathLike[str] | None, *, store: Any = None) -> Path:
    """A GGUF path as given, or the blob of a stored model name (default: the default model)."""
    return resolve_model(name_or_path, store)[0]


def resolve_model(name_or_path: str | os.PathLike[str] | None, store: Any) -> tuple[Path, Any]:
    """The GGUF path and the stored model's Modelfile defaults (None for a path)."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    text = os.fspath(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix == ".gguf" or os.sep in text or candidate.exists():
        return candidate, None
    if store is None:
        from .store import ModelStore

        store = ModelStore()
    stored = store.get(text)
    return stored.path, stored.defaults


def load(name_or_path: str | os.PathLike[str] | None = None, *, store: Any = None, force: bool = False,
         memory_budget: int | str = 0, **options: Any) -> "LoadedModel":
    """Load a model (store name or GGUF path; default: ``smollm2``) and start its engine.

    ``options`` are :class:`~llamarun.runtime.RuntimeConfig` fields, e.g.
    ``n_ctx=4096, n_slots=4, n_threads=2, n_gpu_layers=0``.  Context size, slots,
    threads and GPU layers left out are chosen for this machine by the planner ``llamarun
    serve`` uses (:func:`~llamarun.runtime.plan_load`), within ``memory_budget`` (bytes or
    ``"2GiB"``; 0: the memory available now); a model that will not fit is refused with the
    numbers (:class:`InsufficientMemoryError`) unless ``force=True``.  A stored model made from
    a Modelfile (``llamarun create -f``) brings its defaults: its load parameters (``num_ctx``,
    ``num_thread``, ``num_batch``, ``num_gpu``) for the options not given, and its parameters,
    system prompt, example messages and template for every call that leaves them out.
    """
    unknown = set(options) - _CONFIG_FIELDS
    if unknown:
        raise InvalidParameterError(f"unknown load option(s): {', '.join(sorted(unknown))}")
    path, defaults = resolve_model(name_or_path, store)
    name = str(name_or_path or DEFAULT_MODEL)
    options = {k: v for k, v in options.items() if v is not None}
    if defaults:
        options = {**modelfile_load_settings(defaults.parameters), **options}
    config = plan_config(path, options, force=force, name=name, memory_budget=memory_budget)
    return LoadedModel(Runtime(path, config, name=name), defaults=defaults)


# How a memory error of llamarun.load() names its remedies: the library's parameters, not CLI flags.
_LOAD_ADVICE = MappingProxyType({"n_ctx": "n_ctx=", "n_slots": "n_slots=", "force": "force=True"})


def plan_config(path: Path, options: Mapping[str, Any], *, force: bool = False, name: str = "",
                memory_budget: int | str = 0, hardware: Any = None) -> RuntimeConfig:
    """A RuntimeConfig from explicit ``options``, the rest chosen for ``hardware`` (a
    :class:`~llamarun.hardware.HardwareProfile`; default: this machine) by the planner the
    model manager uses too (:func:`~llamarun.runtime.plan_load`)."""
    from .hardware import ResourceRequest, detect_hardware

    asked = {k: v for k, v in options.items() if k in PLANNED_FIELDS}
    request = ResourceRequest(**asked, memory_budget=_size("memory_budget", memory_budget))
    config, _plan = plan_load(path, hardware or detect_hardware(), request, model_name=name, force=force,
                              names=_LOAD_ADVICE, **{k: v for k, v in options.items() if k not in PLANNED_FIELDS})
    RuntimeConfig(**asked)  # an explicit value is refused as RuntimeConfig refuses it (n_slots=0 is not "auto")
    return config


def _size(name: str, value: int | str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise InvalidParameterError(f"{name}: {exc}", field=name) from None


def build_request(prompt: str | Sequence[int] | PromptSegments, max_tokens: int | None, options: Mapping[str, Any],
                  defaults: Mapping[str, Any] | None = None) -> GenerationRequest:
    """Split keyword options into sampling parameters and request fields; sampling left out comes
    from ``defaults`` (see :func:`llamarun.runtime.sampling.default_sampling`)."""
    unknown = set(options) - _SAMPLING_FIELDS - _REQUEST_FIELDS
    if unknown:
        raise InvalidParameterError(f"unknown generation option(s): {', '.join(sorted(unknown))}")
    if options.get("grammar"):
        from .grammar import check_gbnf

        check_gbnf(options["grammar"])  # depth and size limits before llama.cpp parses it
    explicit = {k: v for k, v in options.items() if k in _SAMPLING_FIELDS}
    sampling = SamplingParams(**{**(defaults or {}), **explicit})
    extra = {k: v for k, v in options.items() if k in _REQUEST_FIELDS}
    if isinstance(extra.get("stop"), str):
        extra["stop"] = (extra["stop"],)
    elif "stop" in extra:
        extra["stop"] = tuple(extra["stop"] or ())
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, sampling=sampling, **extra)


@dataclass(frozen=True)
class ChatResult(GenerationResult):
    """A chat answer: the raw generation plus what was parsed out of it."""

    content: str = ""
    thinking: str = ""
    tool_calls: tuple[Any, ...] = ()


class LoadedModel:
    """A model being served by its own engine thread. Close it (or use ``with``) when done."""

    def __init__(self, runtime: Runtime, *, defaults: Any = None) -> None:
        from .store.modelfile import ModelDefaults

        self.runtime = runtime
        self.defaults: ModelDefaults = defaults or ModelDefaults()  # the stored model's Modelfile defaults
        self._client = SyncClient(runtime)
        self._template: Any = None

    def _options(self, max_tokens: int | None, options: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
        """The call's options over the Modelfile's parameters (an explicit value always wins)."""
        params = self.defaults.parameters
        merged = {_FROM_MODELFILE[k]: v for k, v in params.items() if k in _FROM_MODELFILE}
        merged.update(options)
        if max_tokens is DEFAULT_MAX_TOKENS and "num_predict" in params:
            max_tokens = None if params["num_predict"] < 0 else params["num_predict"]
        return max_tokens, merged

    @property
    def info(self) -> ModelInfo:
        return self.runtime.info

    def generate(self, prompt: str | Sequence[int], *, max_tokens: int | None = DEFAULT_MAX_TOKENS,
                 stream: bool = False, **options: Any) -> GenerationResult | Iterator[Chunk]:
        """Continue ``prompt`` (raw text, no chat template).

        Options: sampling (``temperature``, ``top_k``, ``top_p``, ``min_p``, ``seed``, ``grammar``, ...)
        and request fields (``stop``, ``ignore_eos``, ``timeout``, ``truncate``, ``logprobs``, ...).
        Left out, they are the Modelfile's parameters (``max_tokens``: its ``num_predict``, else 256).
        """
        max_tokens, options = self._options(max_tokens, options)
        request = build_request(prompt, max_tokens, {"add_special": True, "parse_special": False, **options},
                                self.sampling_defaults)
        return self._run(request, stream)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None = DEFAULT_MAX_TOKENS,
             stream: bool = False,
             tools: Sequence[Mapping[str, Any]] | None = None, tool_choice: Any = None,
             response_format: Any = None, think: bool | None = None,
             **options: Any) -> ChatResult | Iterator[Chunk]:
        """Answer a conversation using the model's own chat template.

        ``tools``/``tool_choice`` take OpenAI or Ollama tool specs (``"required"`` or a named
        function forces a call whose arguments validate); ``response_format`` takes ``"json"``,
        a JSON Schema, or OpenAI's ``{"type": "json_object" | "json_schema", ...}``; ``grammar``
        (GBNF) constrains output directly.  The result carries ``content``, ``thinking`` and
        ``tool_calls`` parsed from the text.  With ``stream=True`` chunks carry raw text.  A stored
        model's Modelfile adds its SYSTEM (unless ``messages`` has one), MESSAGE turns and parameters.
        """
        from .chat import prepare_chat

        max_tokens, options = self._options(max_tokens, options)
        messages = self.defaults.conversation(messages)
        plan = prepare_chat(self.chat_template, messages, tools=tools, tool_choice=tool_choice,
                            response_format=response_format, grammar=options.pop("grammar", None), think=think)
        if plan.grammar:
            options["grammar"] = plan.grammar
        request = build_request(plan.prompt_input, max_tokens, {"add_special": False, "parse_special": True, **options},
                                self.sampling_defaults)
        if stream:
            return self._stream(request)
        result = self._client.generate(request)
        output = plan.parse(result.text)
        return ChatResult(**{f.name: getattr(result, f.name) for f in fields(GenerationResult)},
                          content=output.content, thinking=output.thinking, tool_calls=output.tool_calls)

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """Sampling used where a call gives none: the model's GGUF recommendations
        (``general.sampling.*``), else Ollama's (temperature 0.8, top_k 40, top_p 0.9,
        repeat_penalty 1.1 over the last 64 tokens)."""
        return default_sampling(self.info.metadata)

    @property
    def chat_template(self) -> Any:
        """The model's :class:`~llamarun.chat.ChatTemplate` (read once, on the engine thread)."""
        if self._template is None:
            from .chat import ChatTemplate

            template = self.runtime.call(ChatTemplate.for_model)
            if self.defaults.template:
                from .chat.override import modelfile_template

                template = modelfile_template(self.defaults.template, template)
            self._template = template
        return self._template

    def render_chat(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True) -> str:
        """The prompt text the chat template makes of ``messages``."""
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt)

    def _run(self, request: GenerationRequest, stream: bool) -> GenerationResult | Iterator[Chunk]:
        if stream:
            return self._stream(request)
        return self._client.generate(request)

    def _stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        with self._client.stream(request) as handle:
            yield from handle

    default_max_tokens = DEFAULT_MAX_TOKENS

    def chat_request(self, prompt: str | Sequence[int] | PromptSegments, max_tokens: int | None,
                     options: Mapping[str, Any]) -> GenerationRequest:
        """The request :meth:`chat` makes of a rendered prompt (sessions build theirs with it)."""
        max_tokens, merged = self._options(max_tokens, dict(options))
        return build_request(prompt, max_tokens, {"add_special": False, "parse_special": True, **merged},
                             self.sampling_defaults)

    @staticmethod
    def chat_result(result: GenerationResult, output: Any) -> ChatResult:
        """A :class:`ChatResult` of a generation and what the chat plan parsed out of it."""
        return ChatResult(**{f.name: getattr(result, f.name) for f in fields(GenerationResult)},
                          content=output.content, thinking=output.thinking, tool_calls=output.tool_calls)

    def session(self, *, system: str | None = None, messages: Sequence[Mapping[str, Any]] = (),
                **options: Any) -> Session:
        """A :class:`~llamarun.Session`: a conversation that keeps its history and its KV state.

        ``options`` are those of :meth:`chat` (``max_tokens``, sampling, ``stop``, ...), used by every
        turn unless a turn gives its own."""
        from .session import Session

        return Session(self, system=system, messages=messages, **options)

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.runtime.call(lambda m: m.tokenize(text, add_special=add_special, parse_special=parse_special))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.runtime.call(lambda m: m.detokenize(list(tokens)))

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "LoadedModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
