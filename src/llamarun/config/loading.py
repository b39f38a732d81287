"""Reading the settings: the TOML file, ``LLAMARUN_*`` variables and flags, merged with origins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .names import FLAG_NAMES
from .settings import CONFIG_ENV, ENV_PREFIX, HOME_ENV, Origin, Settings, default_home

__all__ = ["config_path", "home_dir", "load_settings"]


def config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was named explicitly (``$LLAMARUN_CONFIG``)."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser(), True
    import platformdirs  # deferred

    return Path(platformdirs.user_config_dir("llamarun", appauthor=False)) / "config.toml", False


def _toml() -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError("reading config.toml on Python 3.10 needs the 'tomli' package") from None
    return tomllib


def _read_file(path: Path, explicit: bool) -> dict[str, Any]:
    if not explicit and not path.exists():
        return {}
    tomllib = _toml()

    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {str(path)!r} does not exist", source=str(path)) from None
        return {}
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}", source=str(path)) from None


def _read_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Setting name -> (raw value, variable name) for every set ``LLAMARUN_<FIELD>``."""
    found: dict[str, tuple[str, str]] = {}
    by_upper = {k.upper(): k for k in env if k.upper().startswith(ENV_PREFIX)}
    for name in Settings.model_fields:
        var = by_upper.get(ENV_PREFIX + name.upper())
        if var is not None and env[var] != "":
            found[name] = (env[var], var)
    return found


def _flag_name(key: str) -> str:
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The store root: ``$LLAMARUN_HOME``, else ``home`` in the config file, else the user data dir.

    Consistent with ``load_settings().home`` but reads only what ``home`` needs, so
    an unrelated bad setting does not stop the store from working.
    """
    env = os.environ if env is None else env
    configured = env.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    path, explicit = config_path(env)
    value = _read_file(path, explicit).get("home")
    if value is None:
        return default_home()
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"invalid setting 'home' in {path}: expected a path string, got {value!r}", key="home", source=str(path)
        )
    return Path(value).expanduser()


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build the effective settings: defaults < TOML file < environment < ``overrides``.

    ``overrides`` are the command line's explicit flags (keys are setting names;
    ``None`` values mean "not given" and are skipped).  ``env`` defaults to
    ``os.environ``; ``config_file`` (e.g. a ``--config`` flag) beats
    ``$LLAMARUN_CONFIG``.  Raises :class:`ConfigError` naming the key and source.
    """
    env = os.environ if env is None else env
    if config_file is not None:
        path, explicit = Path(config_file).expanduser(), True
    else:
        path, explicit = config_path(env)
    file_values = _read_file(path, explicit)

    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for key, value in file_values.items():
        values[key], origins[key] = value, Origin("file", str(path))
    for key, (value, var) in _read_env(env).items():
        values[key], origins[key] = value, Origin("env", var)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key], origins[key] = value, Origin("flag", _flag_name(key))

    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise _config_error(exc, values, origins) from None
    settings._origins = origins
    settings._config_file = path if file_values or path.is_file() else None
    return settings


def _config_error(exc: ValidationError, values: Mapping[str, Any], origins: Mapping[str, Origin]) -> ConfigError:
    lines: list[str] = []
    first_key: str | None = None
    first_source: str | None = None
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else "?"
        origin = origins.get(key, Origin("default"))
        where = f"in config file {origin.detail}" if origin.kind == "file" else f"from {origin}"
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            lines.append(f"unknown setting {key!r} {where} (known settings: {known})")
        else:
            shown = "********" if key == "api_key" else repr(values.get(key))
            reason = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"invalid setting {key!r} = {shown} {where}: {reason}")
        if first_key is None:
            first_key, first_source = key, str(origin)
    return ConfigError("; ".join(lines), key=first_key, source=first_source)
