"""Where ``llamarun run`` gets its answers: a model loaded in this process, or a running server.

Both backends stream an answer as text pieces followed by one :class:`TurnStats`; closing the
stream early (Ctrl-C) cancels the request: in-process the runtime request is cancelled, remotely
the connection is dropped, which makes the server cancel it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

__all__ = ["RUN_FLAGS", "ChatBackend", "LocalChat", "RemoteChat", "TurnStats", "format_count", "open_local", "open_remote"]

Messages = Sequence[Mapping[str, Any]]

# The flags of `llamarun run` that the memory advice may name (it has no --parallel: one conversation).
RUN_FLAGS: Mapping[str, str] = MappingProxyType({"n_ctx": "--ctx", "force": "--force"})


@dataclass(frozen=True)
class TurnStats:
    """Counts and speeds of one answer (``--verbose``)."""

    prompt_tokens: int
    cached_tokens: int
    prompt_tokens_per_s: float
    generated_tokens: int
    generate_tokens_per_s: float
    ttft_s: float | None
    total_s: float
    finish_reason: str


class ChatBackend(Protocol):
    label: str  # e.g. "smollm2 (in-process)"

    def stream(self, messages: Messages, options: Mapping[str, Any]) -> Iterator[str | TurnStats]: ...

    def info(self) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...


def format_count(n: int) -> str:
    """134515008 -> '134.52M' (as Ollama shows parameter counts)."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _bytes(n: int) -> str:
    from ..units import format_bytes

    return format_bytes(n)


def _file_size(path: Any) -> str:
    """The GGUF file's size, as `list` and `show` print it (the weights alone are a little smaller)."""
    import os

    try:
        return _bytes(os.path.getsize(path))
    except OSError:
        return "-"


class LocalChat:
    """A model loaded in this process (``llamarun.load``)."""

    def __init__(self, model: Any, name: str, plan_reasons: Sequence[str] = ()) -> None:
        self.model = model
        self.name = name
        self.label = f"{name} (in-process)"
        self.plan_reasons = tuple(plan_reasons)

    def stream(self, messages: Messages, options: Mapping[str, Any]) -> Iterator[str | TurnStats]:
        from .chat_params import to_local_kwargs

        from ..api import DEFAULT_MAX_TOKENS

        kwargs = to_local_kwargs(options)
        kwargs.setdefault("max_tokens", DEFAULT_MAX_TOKENS if "num_predict" in self.model.defaults.parameters
                          else None)
        last = None
        with closing(self.model.chat(messages, stream=True, **kwargs)) as chunks:
            for chunk in chunks:
                if chunk.text:
                    yield chunk.text
                last = chunk
        if last is not None and last.timings is not None:
            yield self._stats(last)

    @staticmethod
    def _stats(last: Any) -> TurnStats:
        t = last.timings
        rate = max(t.generated_tokens - 1, 0) / t.generate_s if t.generate_s > 0 else 0.0  # tokens after the first
        return TurnStats(t.prompt_tokens, t.cached_tokens, t.prompt_tokens_per_s, t.generated_tokens, rate,
                         t.ttft_s, t.total_s, last.finish_reason.value if last.finish_reason else "stop")

    def modelfile_parameters(self) -> set[str]:
        """Names of the parameters the stored model's Modelfile sets (the model applies them)."""
        return set(self.model.defaults.parameters)

    def save_state(self, path: Any, messages: Messages) -> int:
        """Write the KV state the runtime holds of ``messages`` to ``path`` (``/save``); returns bytes."""
        from ..session import Session

        return Session.resume(self.model, messages).save(path)

    def load_state(self, path: Any) -> int:
        """Hand a KV state saved by :meth:`save_state` to the runtime for the next turn (``/load``);
        returns the tokens it covers.  A file of another model or KV layout is a typed error."""
        from ..session import Session

        return Session.load(self.model, path).history_tokens

    def info(self) -> list[tuple[str, str]]:
        i = self.model.info
        rows = [
            ("model", self.name), ("path", i.path), ("architecture", i.architecture),
            ("parameters", f"{format_count(i.n_params)} ({i.n_params:,})"), ("quantization", i.quantization),
            ("size", _file_size(i.path)), ("weights", _bytes(i.size_bytes)), ("context length", f"{i.n_ctx_train} (trained)"),
            ("context in use", str(self.model.runtime.config.n_ctx)), ("embedding length", str(i.n_embd)),
            ("layers", str(i.n_layer)), ("attention heads", f"{i.n_head} ({i.n_head_kv} for keys/values)"),
            ("vocabulary", f"{i.n_vocab:,} tokens"),
            ("chat template", "from the model" if i.chat_template else "none (ChatML used)"),
        ]
        if i.description:
            rows.insert(2, ("description", i.description))
        return rows + [("plan", reason) for reason in self.plan_reasons]

    def close(self) -> None:
        self.model.close()


class RemoteChat:
    """A model served by a running ``llamarun serve`` (Ollama API at ``--host``)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.label = f"{name} at {client.base_url}"

    def stream(self, messages: Messages, options: Mapping[str, Any]) -> Iterator[str | TurnStats]:
        start = time.perf_counter()
        first: float | None = None
        with closing(self.client.chat_stream(self.name, messages, options)) as lines:
            for data in lines:
                text = (data.get("message") or {}).get("content") or ""
                if text:
                    first = first or time.perf_counter()
                    yield text
                if data.get("done"):
                    yield self._stats(data, start, first)
                    return

    @staticmethod
    def _stats(final: Mapping[str, Any], start: float, first: float | None) -> TurnStats:
        def count(key: str) -> int:
            value = final.get(key)
            return value if isinstance(value, int) else 0

        def rate(n: int, ns_key: str) -> float:
            ns = count(ns_key)
            return n / (ns / 1e9) if ns > 0 else 0.0

        prompt, generated = count("prompt_eval_count"), count("eval_count")
        return TurnStats(prompt, 0, rate(prompt, "prompt_eval_duration"), generated, rate(generated, "eval_duration"),
                         (first - start) if first else None, time.perf_counter() - start,
                         str(final.get("done_reason") or "stop"))

    def modelfile_parameters(self) -> set[str]:
        """Names of the parameters the served model's Modelfile sets (``/api/show`` ``parameters``)."""
        try:
            text = self.client.show(self.name).get("parameters") or ""
        except Exception:  # noqa: BLE001 - a server without /api/show parameters: none known
            return set()
        return {line.split()[0] for line in str(text).splitlines() if line.strip()}

    def info(self) -> list[tuple[str, str]]:
        data = self.client.show(self.name)
        details = data.get("details") or {}
        model_info = data.get("model_info") or {}
        arch = str(model_info.get("general.architecture") or details.get("family") or "")
        rows = [("model", self.name), ("server", self.client.base_url), ("architecture", arch or "-"),
                ("parameters", str(details.get("parameter_size") or model_info.get("general.parameter_count") or "-")),
                ("quantization", str(details.get("quantization_level") or "-"))]
        for key, label in (("context_length", "context length"), ("embedding_length", "embedding length"),
                           ("block_count", "layers")):
            if f"{arch}.{key}" in model_info:
                rows.append((label, str(model_info[f"{arch}.{key}"])))
        return rows

    def close(self) -> None:
        self.client.close()


def open_local(name: str | None, *, ctx: int | None, threads: int | None, gpu_layers: int | None,
               force: bool, backend: str | None = None,
               cache_types: tuple[str | None, str | None] = (None, None)) -> LocalChat:
    """Load ``name`` in-process with sizes chosen for this machine (flags > env > config file)."""
    import llamarun
    from ..api import resolve_model
    from ..config import DEFAULT_MODEL, load_settings
    from ..gguf import read_model_facts
    from ..hardware import ResourceRequest, check_fits, detect_hardware, plan_resources

    label = name or DEFAULT_MODEL
    path, defaults = resolve_model(label, None)
    if ctx is None and defaults:
        ctx = defaults.parameters.get("num_ctx")  # the Modelfile's, below --ctx
    settings = load_settings({"n_ctx": ctx, "threads": threads, "n_gpu_layers": gpu_layers, "backend": backend,
                              "cache_type_k": cache_types[0], "cache_type_v": cache_types[1]})
    plan = plan_resources(read_model_facts(path), detect_hardware(),
                          ResourceRequest.from_settings(settings, n_slots=1))
    check_fits(plan, force=force, model_name=label, names=RUN_FLAGS)  # `run` has one sequence: no --parallel
    model = llamarun.load(label, force=force, memory_budget=settings.memory_budget, n_ctx=plan.n_ctx, n_slots=1,
                          n_threads=plan.n_threads, n_gpu_layers=plan.n_gpu_layers, n_batch=plan.n_batch,
                          n_ubatch=plan.n_ubatch, backend=settings.backend, cache_type_k=plan.cache_type_k,
                          cache_type_v=plan.cache_type_v)
    return LocalChat(model, label, plan.reasons)


def open_remote(host: str, name: str | None, *, preload: bool, api_key: str | None = None) -> RemoteChat:
    """Talk to the server at ``host``; with ``preload`` the model is loaded now (a bad name fails early)."""
    from ..config import DEFAULT_MODEL
    from .ollama_client import OllamaClient

    client = OllamaClient(host, api_key=api_key)
    try:
        if preload:
            client.load(name or DEFAULT_MODEL)
    except BaseException:
        client.close()
        raise
    return RemoteChat(client, name or DEFAULT_MODEL)
