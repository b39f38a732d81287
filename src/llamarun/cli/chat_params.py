"""Generation parameters of a chat session, named as Ollama names them (``/set parameter``).

A session keeps its options in Ollama's vocabulary (``num_predict``, ``temperature``, ``stop`` ...),
so the same dict goes to a server as ``options`` and, through :func:`to_local_kwargs`, to
:meth:`llamarun.LoadedModel.chat` in-process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterError

__all__ = ["PARAMETERS", "Parameter", "parameter_help", "parse_parameter", "to_local_kwargs", "validate_options"]

_UNLIMITED = -1
_MAX_PREDICT = 1 << 24


def _int(text: str) -> int:
    return int(text, 10)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class Parameter:
    """One settable parameter: its value kind and a line of help."""

    name: str
    parse: Callable[[str], Any]
    kind: str  # shown in help: "<int>", "<float>", "<string> ..."
    help: str


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("temperature", _float, "<float>", "creativity; 0 is greedy"),
        Parameter("top_k", _int, "<int>", "pick from the k most likely tokens"),
        Parameter("top_p", _float, "<float>", "pick from the smallest set whose probabilities sum to p"),
        Parameter("min_p", _float, "<float>", "drop tokens below min_p x the top token's probability"),
        Parameter("typical_p", _float, "<float>", "locally typical sampling (1 = off)"),
        Parameter("seed", _int, "<int>", "random number seed"),
        Parameter("num_predict", _int, "<int>", "most tokens to generate (-1: until the answer ends)"),
        Parameter("repeat_penalty", _float, "<float>", "how strongly to penalize repetitions (1 = off)"),
        Parameter("repeat_last_n", _int, "<int>", "how far back to look for repetitions"),
        Parameter("presence_penalty", _float, "<float>", "penalty for tokens already present"),
        Parameter("frequency_penalty", _float, "<float>", "penalty by how often a token appeared"),
        Parameter("mirostat", _int, "<int>", "mirostat sampling (0 off, 1, 2)"),
        Parameter("mirostat_tau", _float, "<float>", "mirostat target entropy"),
        Parameter("mirostat_eta", _float, "<float>", "mirostat learning rate"),
        Parameter("stop", str, "<string> ...", "stop strings (one or more)"),
    )
}

_ALIASES = {"max_tokens": "num_predict", "temp": "temperature"}
_FIXED_AT_LOAD = {"num_ctx": "--ctx", "num_thread": "--threads", "num_gpu": "--gpu-layers"}


def parameter_help() -> str:
    """The ``/set parameter`` help text."""
    lines = ["Available parameters:"]
    usages = {p.name: f"/set parameter {p.name} {p.kind}" for p in PARAMETERS.values()}
    width = max(len(u) for u in usages.values())
    for p in PARAMETERS.values():
        lines.append(f"  {usages[p.name]:<{width}}  {p.help}")
    lines.append("  (max_tokens is another name for num_predict)")
    return "\n".join(lines)


def parse_parameter(name: str, values: Sequence[str]) -> tuple[str, Any]:
    """``("temperature", ["0.5"])`` -> ``("temperature", 0.5)``; InvalidParameterError when bad."""
    key = _ALIASES.get(name, name)
    if key in _FIXED_AT_LOAD:
        raise InvalidParameterError(
            f"{key} is fixed when the model loads: restart with {_FIXED_AT_LOAD[key]}", field=key)
    param = PARAMETERS.get(key)
    if param is None:
        raise InvalidParameterError(
            f"unknown parameter {name!r}; one of: {', '.join(PARAMETERS)}", field=name)
    if not values:
        raise InvalidParameterError(f"/set parameter {key} needs a value {param.kind}", field=key)
    if key == "stop":
        value: Any = list(values)
    elif len(values) != 1:
        raise InvalidParameterError(f"{key} takes one value {param.kind}", field=key)
    else:
        try:
            value = param.parse(values[0])
        except ValueError:
            raise InvalidParameterError(f"{key} must be {param.kind.strip('<>')}, got {values[0]!r}",
                                        field=key) from None
    validate_options({key: value})
    return key, value


def to_local_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """Ollama-named options as keyword arguments of ``LoadedModel.chat``."""
    kwargs = {k: v for k, v in options.items() if k in PARAMETERS and k != "num_predict"}
    if "num_predict" in options:
        predict = options["num_predict"]
        kwargs["max_tokens"] = None if predict is None or predict < 0 else predict
    if "stop" in kwargs:
        kwargs["stop"] = tuple(kwargs["stop"])
    return kwargs


def validate_options(options: Mapping[str, Any]) -> None:
    """Raise InvalidParameterError (naming the parameter) for an unknown name or a bad value."""
    from ..runtime import GenerationRequest
    from ..types import SamplingParams

    unknown = set(options) - set(PARAMETERS)
    if unknown:
        raise InvalidParameterError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    for key, value in options.items():
        kind = int if PARAMETERS[key].parse is _int else float if PARAMETERS[key].parse is _float else None
        if kind is not None and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or kind is int and isinstance(value, float)):
            raise InvalidParameterError(f"{key} must be {PARAMETERS[key].kind.strip('<>')}, got {value!r}", field=key)
    predict = options.get("num_predict")
    if predict is not None and not _UNLIMITED <= predict <= _MAX_PREDICT:
        raise InvalidParameterError(f"num_predict must be -1 (no limit) or 0..{_MAX_PREDICT}, got {predict!r}",
                                    field="num_predict")
    kwargs = to_local_kwargs(options)
    stop = kwargs.pop("stop", ())
    kwargs.pop("max_tokens", None)
    if not isinstance(stop, Sequence) or any(not isinstance(s, str) or not s for s in stop):
        raise InvalidParameterError("stop must be a list of non-empty strings", field="stop")
    try:
        GenerationRequest(prompt="", stop=tuple(stop), sampling=SamplingParams(**kwargs))
    except TypeError as exc:  # a wrong type in a loaded file, e.g. a string for top_k
        raise InvalidParameterError(f"invalid parameter value: {exc}") from None
