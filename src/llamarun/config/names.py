"""The names one setting goes by, in one table.

Inside llamarun a setting has one name: its field in
:class:`~llamarun.runtime.RuntimeConfig` (``n_ctx``, ``n_slots``, ``n_threads``,
``n_gpu_layers``, ...) or, for what only the model manager uses, in
:class:`~llamarun.runtime.ManagerConfig`.  ``ManagerConfig``, the hardware plan
(:class:`~llamarun.hardware.ResourceRequest`, :class:`~llamarun.hardware.ResourcePlan`),
the manager's ``LoadOptions`` and the keyword arguments of :func:`llamarun.load` all use
it.  Users keep their own spellings, and :data:`SPELLINGS` lists them once, for every
setting spelled otherwise somewhere: the config-file key (a :class:`~llamarun.config.Settings`
field, ``LLAMARUN_<KEY>`` in the environment), the command-line flag, and Ollama's option
(also a Modelfile ``PARAMETER``).  The mappings below are views of that table.

The engine keeps llama.cpp's names (:class:`~llamarun.types.ContextOptions`): its
``n_seq_max`` is ``n_slots``, and its ``n_ctx`` counts the cells of all slots together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "FLAG_NAMES",
    "OLLAMA_NAMES",
    "SETTING_NAMES",
    "SPELLINGS",
    "Spelling",
    "public_names",
    "settings_values",
]


@dataclass(frozen=True)
class Spelling:
    """How users write one setting."""

    setting: str  # the config-file key and Settings field; LLAMARUN_<SETTING> in the environment
    flag: str  # the command-line flag (`llamarun serve`, `run`, `hw`)
    ollama: str = ""  # Ollama's option and Modelfile PARAMETER ("": Ollama has none)


SPELLINGS: Mapping[str, Spelling] = MappingProxyType({
    "n_ctx": Spelling("n_ctx", "--ctx", "num_ctx"),
    "n_slots": Spelling("parallel", "--parallel"),
    "n_threads": Spelling("threads", "--threads", "num_thread"),
    "n_batch": Spelling("n_batch", "--n-batch", "num_batch"),
    "n_gpu_layers": Spelling("n_gpu_layers", "--gpu-layers", "num_gpu"),
    "cors_origins": Spelling("cors_origins", "--cors-origin"),
    "session_ram": Spelling("session_ram", "--session-ram"),
    "session_disk": Spelling("session_disk", "--session-disk"),
    "cache_type_k": Spelling("cache_type_k", "--cache-type-k"),  # llama-server's -ctk; Ollama: OLLAMA_KV_CACHE_TYPE
    "cache_type_v": Spelling("cache_type_v", "--cache-type-v"),
    "speculative_n_max": Spelling("speculative_n_max", "--draft-max"),  # llama-server's --draft-max
    "speculative_draft_model": Spelling("speculative_draft_model", "--draft-model"),  # llama-server's -md
})

# our name -> its config-file key (only where they differ)
SETTING_NAMES: Mapping[str, str] = MappingProxyType(
    {name: s.setting for name, s in SPELLINGS.items() if s.setting != name})
# config-file key -> its command-line flag (only where it is not the key with dashes)
FLAG_NAMES: Mapping[str, str] = MappingProxyType(
    {s.setting: s.flag for s in SPELLINGS.values() if s.flag != "--" + s.setting.replace("_", "-")})
# our name -> Ollama's option / Modelfile PARAMETER
OLLAMA_NAMES: Mapping[str, str] = MappingProxyType({name: s.ollama for name, s in SPELLINGS.items() if s.ollama})


def settings_values(settings: Any, names: Iterable[str]) -> dict[str, Any]:
    """The values of ``settings`` (a :class:`~llamarun.config.Settings`) under our ``names``;
    a name that is no setting (e.g. the manager's ``wait_timeout``) is left out."""
    known = type(settings).model_fields
    keys = {name: SETTING_NAMES.get(name, name) for name in names}
    return {name: getattr(settings, key) for name, key in keys.items() if key in known}


def public_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` keyed by the names users write (``n_slots`` -> ``parallel``), e.g. for JSON output."""
    return {SETTING_NAMES.get(name, name): value for name, value in values.items()}
