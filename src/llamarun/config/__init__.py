"""llamarun's settings: one object, four layers, and where each value came from.

Precedence for every setting, lowest first::

    defaults  <  TOML file  <  LLAMARUN_* environment variables  <  command-line flags

The TOML file is ``$LLAMARUN_CONFIG`` when set, else ``config.toml`` in the
platform's user config directory (``~/.config/llamarun/config.toml`` on Linux).
It holds flat ``key = value`` pairs named like the fields of :class:`Settings`.
The environment variable of a setting is ``LLAMARUN_`` + its upper-case name
(``LLAMARUN_PORT``).  Flags reach :func:`load_settings` as ``overrides``.

Nothing is read at import time and nothing is cached: :func:`load_settings`
returns a new frozen :class:`Settings` every call.  An invalid value raises
:class:`~llamarun.errors.ConfigError` naming the key and the file, environment
variable or flag it came from.

The jobs: :mod:`.settings` (the object and its validation), :mod:`.loading` (reading the
file, the environment and flags), :mod:`.names` (the one table of the names a setting goes
by in the config file, on the command line, in Ollama's options and inside llamarun).
"""

from __future__ import annotations

from ..units import MAX_KEEP_ALIVE, parse_duration, parse_keep_alive, parse_size
from .loading import config_path, home_dir, load_settings
from .settings import CONFIG_ENV, DEFAULT_MODEL, ENV_PREFIX, HOME_ENV, Origin, Settings

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_MODEL",
    "ENV_PREFIX",
    "HOME_ENV",
    "MAX_KEEP_ALIVE",
    "Origin",
    "Settings",
    "config_path",
    "home_dir",
    "load_settings",
    "parse_duration",
    "parse_keep_alive",
    "parse_size",
]
