"""What every frontend shares: leases on models, chat prompts, the engine thread, a thread pool.

One :class:`Service` per server holds the model manager, the store, a thread
pool for blocking calls (loads, engine-thread calls, store operations) and a
cache of each loaded model's chat template. Frontends (HTTP, gRPC, the socket
bridge, Ray Serve replicas) translate their requests onto it and onto
:func:`llamarun.serving.start_turn`.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import InvalidNameError, ModelNotFoundError, TemplateError
from ..runtime import MAX_STREAM_INTERVAL, Lease, LoadOptions, ModelManager, Runtime
from ..types import TokenLogprob
from .cancel import Gone, until_gone
from .resolve import KnownModels

__all__ = ["Pieces", "Service", "ServingConfig"]

T = TypeVar("T")


@dataclass(frozen=True)
class ServingConfig:
    """What the serving layer needs to know of its server's settings."""

    request_timeout: float = 0.0  # seconds a generation may run when the request names none (0: no limit)
    stream_interval: int = 1  # tokens per streamed chunk
    version: str = ""
    workers: int = 64  # threads for blocking calls
    fallback_template: str | None = None  # built-in template for models without one (None: from the vocabulary)


class Pieces:
    """Token id -> text (for logprobs), read from the vocabulary once per answer."""

    def __init__(self, mapping: Mapping[int, str]) -> None:
        self.mapping = mapping

    def __call__(self, token: int) -> str:
        return self.mapping.get(token, "")


def _release_later(future: asyncio.Future[Lease]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().release()


class Service:
    """Shared machinery of one server, whatever protocols it speaks."""

    def __init__(self, manager: ModelManager, store: Any, config: ServingConfig | None = None) -> None:
        self.config = config or ServingConfig()
        self.manager = manager
        self.store = store
        self._known = KnownModels(store)  # each name's stored model and defaults, while unchanged
        self.executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="llamarun-serve")
        self._templates: weakref.WeakKeyDictionary[Runtime, dict[str | None, Any]] = weakref.WeakKeyDictionary()
        self.started = time.time()

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call on the service's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def stream_interval(self, stream: bool) -> int:
        """Tokens per chunk a request's output reaches the event loop in: the configured interval when
        streaming; otherwise only the first token and the end (no wake-up per token for nothing)."""
        return self.config.stream_interval if stream else MAX_STREAM_INTERVAL

    def timeout(self, requested: float | None) -> float | None:
        """A request's generation time limit: its own, else the server's default (0 = none)."""
        return requested if requested is not None else (self.config.request_timeout or None)

    # -- models ------------------------------------------------------------------

    async def acquire(self, name: str, options: LoadOptions | None = None, keep_alive: float | None = None, *,
                      gone: Gone | None = None) -> Lease:
        """A lease on ``name`` (loading it if needed); a caller that leaves meanwhile gets nothing
        and the lease, once granted, is returned at once."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.executor, functools.partial(self.manager.acquire, name, options, keep_alive=keep_alive))
        try:
            return await until_gone(gone, asyncio.shield(future))
        except BaseException:
            future.add_done_callback(_release_later)
            raise

    async def engine_call(self, lease: Lease, fn: Callable[[Any], T]) -> T:
        """Run ``fn(model)`` on the model's engine thread."""
        return await self.blocking(lease.runtime.call, fn)

    async def model_defaults(self, name: str) -> Any:
        """The stored model's Modelfile defaults (empty for a name the store does not know: the
        request then fails where the model is acquired, with its usual error)."""
        from ..store.modelfile import ModelDefaults

        try:
            return await self.blocking(self._known.defaults, name)  # may read files: off the loop
        except (ModelNotFoundError, InvalidNameError):
            return ModelDefaults()

    # -- prompts -----------------------------------------------------------------

    async def template(self, lease: Lease, override: str | None = None) -> Any:
        """The model's chat template, or the Modelfile's ``override`` (built with the model's BOS/EOS)."""
        built = self._templates.setdefault(lease.runtime, {})  # per loaded model: the own one, then overrides
        if None not in built:
            from ..chat import ChatTemplate

            fallback = self.config.fallback_template
            built[None] = await self.engine_call(lease, lambda m: ChatTemplate.for_model(m, fallback=fallback))
        if override and override not in built:  # compiled in the sandbox once per model, not per request
            from ..chat.override import modelfile_template

            built[override] = await self.blocking(modelfile_template, override, built[None])
        return built[override or None]

    async def builtin_template(self, lease: Lease, name: str) -> Any:
        """One of llama.cpp's built-in templates by name (a request's ``template_name``), with the
        model's control-token texts; an unknown name is a 400 listing the known ones."""
        from ..chat import ChatTemplate

        own = await self.template(lease)
        control_texts = own.client_text.texts if own.client_text is not None else None
        try:
            return ChatTemplate.builtin(name, limits=own.limits, control_texts=control_texts)
        except TemplateError as exc:
            exc.field = "template_name"
            raise

    async def prepare_chat(self, lease: Lease, messages: Sequence[Mapping[str, Any]], *, defaults: Any = None,
                           template_name: str | None = None, **kwargs: Any) -> Any:
        """Render the chat prompt and pick its grammar (a :class:`llamarun.chat.ChatPlan`);
        ``template_name``: a built-in template a request names instead of the model's."""
        from ..chat import prepare_chat

        if defaults:
            messages = defaults.conversation(messages)
        if template_name:
            template = await self.builtin_template(lease, template_name)
        else:
            template = await self.template(lease, defaults.template if defaults else None)
        work = functools.partial(prepare_chat, template, messages, **kwargs)
        if template.is_builtin:  # llama.cpp renders built-in templates: its engine thread must do it
            return await self.engine_call(lease, lambda _model: work())
        return await self.blocking(work)

    async def response_grammar(self, response_format: Any) -> str | None:
        """The grammar of a raw prompt's ``format``/``response_format`` (None: free text)."""
        from ..grammar import response_format_grammar

        return await self.blocking(response_format_grammar, response_format)

    async def tokenize(self, lease: Lease, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return await self.engine_call(
            lease, lambda m: m.tokenize(text, add_special=add_special, parse_special=parse_special))

    async def tokenize_parts(self, lease: Lease, parts: Sequence[tuple[str, bool]], *,
                             add_special: bool) -> list[int]:
        """Token ids of (text, parse_special) parts (a chat prompt's segments)."""
        return await self.engine_call(lease, lambda m: m.vocab.tokenize_parts(parts, add_special=add_special))

    async def token_pieces(self, lease: Lease, items: Sequence[TokenLogprob]) -> Pieces:
        """The text of every token named in ``items`` (chosen and top alternatives)."""
        ids = sorted({lp.token for lp in items} | {t for lp in items for t, _ in lp.top})
        if not ids:
            return Pieces({})
        mapping = await self.engine_call(
            lease, lambda m: {t: m.vocab.piece(t).decode("utf-8", "replace") for t in ids})
        return Pieces(mapping)
