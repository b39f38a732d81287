"""The :class:`Settings` object: every setting, its default, its bounds and how it is written.

Its field names are the keys of the config file and, upper-cased after ``LLAMARUN_``, the
environment variables (see :mod:`llamarun.config`); where a lower layer calls a setting by
another name (``threads`` is ``n_threads``, ``parallel`` is ``n_slots``), the one table of
:mod:`llamarun.config.names` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..errors import ConfigError
from ..units import parse_duration, parse_keep_alive, parse_size

__all__ = ["CONFIG_ENV", "DEFAULT_MODEL", "ENV_PREFIX", "HOME_ENV", "Origin", "Settings", "default_home"]

DEFAULT_MODEL = "smollm2"
ENV_PREFIX = "LLAMARUN_"
CONFIG_ENV = "LLAMARUN_CONFIG"
HOME_ENV = "LLAMARUN_HOME"

KVCacheType = Literal["f16", "f32", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]  # types.KV_CACHE_TYPES
_DURATION_FIELDS = ("keep_alive", "request_timeout", "shutdown_timeout", "header_timeout", "body_timeout")
_SIZE_FIELDS = ("memory_budget", "session_ram", "session_disk")


def default_home() -> Path:
    import platformdirs  # deferred: no work at import time

    return Path(platformdirs.user_data_dir("llamarun", appauthor=False))


def _auto(value: Any, auto: int) -> Any:
    """Map the string ``"auto"`` to the field's automatic sentinel."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return auto
    return value


@dataclass(frozen=True)
class Origin:
    """Where a value came from: ``default``, ``file`` (path), ``env`` (variable) or ``flag``."""

    kind: Literal["default", "file", "env", "flag"]
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "default":
            return "default"
        if self.kind == "file":
            return f"file {self.detail}"
        if self.kind == "env":
            return f"environment variable {self.detail}"
        return f"flag {self.detail}"


# -- the settings object ----------------------------------------------------------------


class Settings(BaseSettings):
    """Every llamarun setting. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
        validate_default=True,
    )

    home: Path = Field(default_factory=default_home, description="Model store root (blobs, manifests).")
    default_model: str = Field(DEFAULT_MODEL, min_length=1, description="Model used when a command names none.")
    host: str = Field("127.0.0.1", min_length=1, description="Address `serve` binds and clients connect to.")
    port: int = Field(11434, ge=0, le=65535, description="TCP port of `serve` (0: any free port).")
    threads: int = Field(0, ge=0, le=1024, description="CPU threads for llama.cpp (0/auto: the usable cores).")
    n_ctx: int = Field(
        0, ge=0, le=1 << 22, description="Context window of one request in tokens (0/auto: fit to memory)."
    )
    parallel: int = Field(
        0, ge=0, le=256, description="Parallel sequences (slots) per model (0/auto: from memory and cores)."
    )
    n_batch: int = Field(512, ge=1, le=1 << 16, description="Logical batch size: most tokens per decode call.")
    n_ubatch: int = Field(512, ge=1, le=1 << 16, description="Physical batch size; compute buffers scale with it.")
    n_gpu_layers: int = Field(
        -1, ge=-1, le=100_000, description="Layers offloaded to the GPU (-1/auto: all that fit; 0: CPU only)."
    )
    backend: Literal["llama.cpp", "numpy"] = Field(
        "llama.cpp", description="Engine that runs models: llama.cpp, or the pure-NumPy reference backend."
    )
    cache_type_k: KVCacheType = Field(
        "f16", description="KV-cache type of the keys: f16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, bf16, f32 "
        "(q8_0 halves the KV memory for a small quality cost)."
    )
    cache_type_v: KVCacheType = Field(
        "f16", description="KV-cache type of the values (as cache_type_k; a quantized type needs flash attention, "
        "which llama.cpp turns on by itself on the CPU)."
    )
    speculative: Literal["off", "ngram", "draft"] = Field(
        "off", description="How requests speculate unless they say otherwise: off, ngram (prompt lookup, no "
        "second model; pays when answers copy their input) or draft (needs speculative_draft_model)."
    )
    speculative_n_max: int = Field(8, ge=0, le=64, description="Most drafted tokens per request and step.")
    speculative_draft_model: str = Field(
        "", description="GGUF path of a smaller model of the same vocabulary that drafts (loaded with each model)."
    )
    keep_alive: float = Field(
        300.0, description="How long an idle model stays loaded: seconds or '5m' (0: unload; <0: forever; "
        "at most 1e9 s)."
    )
    max_request_ctx: int = Field(
        0, ge=0, le=1 << 22, description="Largest num_ctx one request may ask for (0/auto: the larger of n_ctx and "
        "the model's training context)."
    )
    allow_request_reload: bool = Field(
        False, description="Let a request's load options (num_ctx, num_thread, num_batch, num_gpu) reload a model "
        "with other settings (off: a request that needs other settings is a 400)."
    )
    max_loaded_models: int = Field(3, ge=1, le=64, description="Models kept loaded at once (LRU unloads first).")
    memory_budget: int = Field(
        0, ge=0, description="Bytes all loaded models may use, e.g. '8GiB' (0/auto: the available memory)."
    )
    session_ram: int = Field(
        256 << 20, ge=0, description="Bytes of saved KV states of conversations out of their slots kept in RAM "
        "per model, e.g. '256MiB' (0: none; least recently used go to disk first)."
    )
    session_disk: int = Field(
        2 << 30, ge=0, description="Bytes of saved KV states kept on disk per model under the home's sessions/ "
        "(0: none; least recently used are dropped first)."
    )
    max_queue: int = Field(512, ge=0, le=1 << 20, description="Waiting requests per model before 503/Overloaded.")
    request_timeout: float = Field(
        600.0, ge=0, description="Default per-request timeout in seconds or '10m' (0: none)."
    )
    shutdown_timeout: float = Field(30.0, ge=0, description="Seconds in-flight requests get to finish on SIGTERM.")
    header_timeout: float = Field(
        10.0, ge=0, le=1e9, description="Seconds a `serve` client has to send its request headers (0: none)."
    )
    body_timeout: float = Field(
        30.0, ge=0, le=1e9, description="Seconds a `serve` client may send no body bytes mid-body (0: none)."
    )
    max_connections_per_client: int = Field(
        256, ge=0, le=1 << 20, description="Open connections `serve` accepts from one address (0: no bound)."
    )
    stream_interval: int = Field(
        1, ge=1, le=1024, description="Tokens per streamed chunk in `serve` after the first (1: every token; "
        "more: less CPU per token on small machines)."
    )
    api_key: SecretStr | None = Field(None, description="Bearer key required by `serve` (never printed).")
    api_key_file: Path | None = Field(None, description="File holding the API key (first line).")
    insecure: bool = Field(False, description="Allow `serve` on a non-loopback address without an API key.")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Origins allowed by CORS (comma-separated in the environment; none by default)."
    )
    web: bool = Field(True, description="Serve the web chat page at / and the live dashboard at /dashboard "
                      "(`serve --no-web`: off).")
    log_prompts: bool = Field(False, description="Keep the first 200 characters of each prompt in the dashboard's "
                              "recent requests, shown there as text (`serve --log-prompts`; off: nothing of a "
                              "prompt is kept).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING", description="Python logging level of llamarun (DEBUG also shows llama.cpp's log)."
    )

    _origins: dict[str, Origin] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)

    @field_validator("home", "api_key_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("threads", "n_ctx", "parallel", "max_request_ctx", mode="before")
    @classmethod
    def _auto_zero(cls, value: Any) -> Any:
        return _auto(value, 0)

    @field_validator("n_gpu_layers", mode="before")
    @classmethod
    def _auto_gpu(cls, value: Any) -> Any:
        return _auto(value, -1)

    @field_validator("memory_budget", "session_ram", "session_disk", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(_auto(value, 0))

    @field_validator(*(f for f in _DURATION_FIELDS if f != "keep_alive"), mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _keep_alive(cls, value: Any) -> float:
        return parse_keep_alive(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cache_type_k", "cache_type_v", "speculative", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other):  # type: ignore[no-untyped-def,override]
        # load_settings merges the layers itself (to know each value's origin) and
        # passes the result as keyword arguments: no hidden reads of os.environ.
        return (init_settings,)

    # -- provenance ---------------------------------------------------------------

    @property
    def origins(self) -> Mapping[str, Origin]:
        """Where each setting's value came from."""
        return MappingProxyType({name: self._origins.get(name, Origin("default")) for name in type(self).model_fields})

    def origin(self, key: str) -> Origin:
        return self.origins[key]

    @property
    def config_file(self) -> Path | None:
        """The TOML file that was read, if any."""
        return self._config_file

    def resolved_api_key(self) -> str | None:
        """``api_key``, else the first line of ``api_key_file``, else None."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is None:
            return None
        try:
            lines = self.api_key_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"cannot read api_key_file {str(self.api_key_file)!r}: {exc.strerror}",
                key="api_key_file",
                source=str(self.origin("api_key_file")),
            ) from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise ConfigError(f"api_key_file {str(self.api_key_file)!r} is empty", key="api_key_file")
        return key

    def written_values(self) -> dict[str, str]:
        """Durations and sizes as a user writes them (``keep_alive`` -> ``"5m"``, ``8GiB``)."""
        from ..units import format_duration, format_size_setting

        texts = {key: format_duration(getattr(self, key)) for key in _DURATION_FIELDS}
        return texts | {key: format_size_setting(getattr(self, key)) for key in _SIZE_FIELDS}

    def display_values(self) -> dict[str, Any]:
        """JSON-friendly effective values, with secrets masked."""
        values = self.model_dump(mode="json")
        if self.api_key is not None:
            values["api_key"] = "********"
        return values
