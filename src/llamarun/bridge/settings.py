"""Per-connection settings (``SET``/``GET``/``RESET``), validated as the serving layer validates them.

Sampling values are checked by building a :class:`llamarun.serving.Options` (the
same ranges as the Ollama API); ``json_schema`` and ``grammar`` are compiled or
checked within the grammar limits when they are set, so a bad one is refused by
``SET`` rather than by the next ``INFER``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import InvalidParameterError
from ..serving import Options
from .protocol import json_argument, text_argument

__all__ = ["SETTING_NAMES", "ConnectionSettings"]

# setting -> the Options field it is (sampling and length); the rest are the bridge's own
_OPTION_FIELDS: Mapping[str, str] = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "seed": "seed",
    "max_tokens": "num_predict", "stop": "stop", "ignore_eos": "ignore_eos", "timeout": "timeout",
}
_TEXT = ("system", "grammar")
_OTHER = ("json_schema", "raw")
SETTING_NAMES = (*_OPTION_FIELDS, *_TEXT, *_OTHER)


def _option(name: str, value: Any) -> Any:
    field = _OPTION_FIELDS[name]
    try:
        return getattr(Options.model_validate({field: value}), field)
    except ValidationError as exc:
        problem = exc.errors()[0].get("msg", "invalid value")
        raise InvalidParameterError(f"{name}: {problem}", field=name) from None


def _check_schema(schema: Any) -> Any:
    from ..grammar import response_format_grammar

    if schema != "json" and not isinstance(schema, dict):
        raise InvalidParameterError('json_schema: a JSON schema object, or "json" for any JSON object',
                                    field="json_schema")
    response_format_grammar(schema)  # GrammarError (within the grammar limits) for what cannot be honoured
    return schema


def _check_grammar(text: str) -> str:
    from ..grammar import check_gbnf

    check_gbnf(text)
    return text


def _raw(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError("raw: true or false", field="raw")
    return value


@dataclass
class ConnectionSettings:
    """What one connection has set; left out: the model's defaults."""

    values: dict[str, Any]

    @classmethod
    def empty(cls) -> ConnectionSettings:
        return cls({})

    def set(self, name: str, argument: str) -> Any:
        """Validate and keep ``name``'s value (``null`` unsets it); returns the value kept."""
        name = name.lower()
        if name not in SETTING_NAMES:
            raise InvalidParameterError(f"unknown setting {name[:40]!r}; one of: {', '.join(SETTING_NAMES)}",
                                        field="setting")
        value = self._parse(name, argument)
        if value is None:
            self.values.pop(name, None)
            return None
        others = {"grammar": "json_schema", "json_schema": "grammar"}
        if others.get(name) in self.values:
            raise InvalidParameterError(f"{name} and {others[name]} cannot both be set: RESET {others[name]} first",
                                        field=name)
        self.values[name] = value
        return value

    def _parse(self, name: str, argument: str) -> Any:
        if argument.strip() == "null":
            return None
        if name in _TEXT:
            text = text_argument(argument, name)
            return _check_grammar(text) if name == "grammar" else text
        if name == "stop" and not argument.lstrip().startswith(("[", '"')):
            return _option(name, [text_argument(argument, name)])
        value = json_argument(argument, name)
        checks: dict[str, Callable[[Any], Any]] = {"json_schema": _check_schema, "raw": _raw}
        return checks[name](value) if name in checks else _option(name, value)

    def get(self, name: str) -> Any:
        name = name.lower()
        if name not in SETTING_NAMES:
            raise InvalidParameterError(f"unknown setting {name[:40]!r}; one of: {', '.join(SETTING_NAMES)}",
                                        field="setting")
        return self.values.get(name)

    def reset(self, name: str = "") -> None:
        if not name:
            self.values.clear()
        else:
            self.get(name)
            self.values.pop(name.lower(), None)

    def options(self) -> Options:
        return Options.model_validate({field: self.values[name] for name, field in _OPTION_FIELDS.items()
                                       if name in self.values})

    @property
    def system(self) -> str | None:
        return self.values.get("system")

    @property
    def grammar(self) -> str | None:
        return self.values.get("grammar")

    @property
    def json_schema(self) -> Any:
        return self.values.get("json_schema")

    @property
    def raw(self) -> bool:
        return bool(self.values.get("raw"))
