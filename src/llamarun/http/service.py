"""What both APIs share: leases on models, chat prompts, submitting and collecting generations.

One :class:`Service` per app holds the model manager, the store, a thread
pool for blocking calls (loads, engine-thread calls, store operations) and a
cache of each loaded model's chat template.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.types import Receive

from ..errors import (
    InvalidParameterError,
    LlamarunError,
    RequestCancelledError,
    UnsupportedFeatureError,
)
from ..runtime import MAX_STREAM_INTERVAL, AsyncRequest, GenerationRequest, Lease, LoadOptions, ModelManager, Runtime
from ..types import Chunk, FinishReason, GenerationResult, TokenLogprob
from .config import HttpConfig
from .guard import ServerState
from .streaming import until_disconnect

__all__ = ["Collected", "Service", "request_timeout"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_HEADER = "x-request-timeout"


def request_timeout(body_timeout: float | None, headers: Mapping[str, str], default: float) -> float | None:
    """The request's timeout in seconds: its body, else the ``X-Request-Timeout`` header, else the
    server default (0 = none)."""
    if body_timeout is not None:
        return body_timeout
    raw = headers.get(TIMEOUT_HEADER)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            raise InvalidParameterError(f"X-Request-Timeout must be a number of seconds, got {raw[:40]!r}",
                                        field="X-Request-Timeout") from None
        if not 0 < value <= 1e7:
            raise InvalidParameterError("X-Request-Timeout must be between 0 and 1e7 seconds",
                                        field="X-Request-Timeout")
        return value
    return default or None


@dataclass
class Collected:
    """A finished generation with the per-token log-probabilities its chunks carried."""

    result: GenerationResult
    logprobs: list[TokenLogprob] = field(default_factory=list)


def check_finished(result: GenerationResult, timeout: float | None = None) -> None:
    """Turn a cancellation or error ending into the matching error.

    A deadline is not an error: the partial text is answered with a deadline finish reason
    (Ollama ``done_reason: "deadline"``, OpenAI ``finish_reason: "length"``), as the library returns it.
    """
    if result.finish_reason is FinishReason.CANCELLED:
        raise RequestCancelledError("the request was cancelled (the server may be shutting down)")
    if result.finish_reason is FinishReason.ERROR:
        raise LlamarunError(result.error or "generation failed")


async def collect(request: AsyncRequest) -> Collected:
    logprobs: list[TokenLogprob] = []
    try:
        while request.result is None:
            event = await request.next_event()
            if isinstance(event, Chunk) and event.logprobs:
                logprobs.extend(event.logprobs)
        return Collected(request.result, logprobs)
    finally:
        request.cancel()


def _release_later(future: asyncio.Future[Lease]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().release()


class Service:
    """Shared machinery of one app."""

    def __init__(self, config: HttpConfig, manager: ModelManager, store: Any, state: ServerState, *,
                 workers: int = 64) -> None:
        self.config = config
        self.manager = manager
        self.store = store
        self.state = state
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llamarun-http")
        self._templates: weakref.WeakKeyDictionary[Runtime, dict[str | None, Any]] = weakref.WeakKeyDictionary()
        self.started = time.time()

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call on the service's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- models ------------------------------------------------------------------

    async def acquire(self, receive: Receive, name: str, options: LoadOptions | None = None,
                      keep_alive: float | None = None) -> Lease:
        """A lease on ``name`` (loading it if needed); a client that leaves meanwhile gets nothing
        and the lease, once granted, is returned at once."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.executor, functools.partial(self.manager.acquire, name, options, keep_alive=keep_alive))
        try:
            return await until_disconnect(receive, asyncio.shield(future))
        except BaseException:
            future.add_done_callback(_release_later)
            raise

    async def engine_call(self, lease: Lease, fn: Callable[[Any], T]) -> T:
        """Run ``fn(model)`` on the model's engine thread."""
        return await self.blocking(lease.runtime.call, fn)

    # -- prompts -----------------------------------------------------------------

    async def template(self, lease: Lease, override: str | None = None) -> Any:
        """The model's chat template, or the Modelfile's ``override`` (built with the model's BOS/EOS)."""
        built = self._templates.setdefault(lease.runtime, {})  # per loaded model: the own one, then overrides
        if None not in built:
            from ..chat import ChatTemplate

            built[None] = await self.engine_call(lease, ChatTemplate.for_model)
        if override and override not in built:  # compiled in the sandbox once per model, not per request
            from ..chat.override import modelfile_template

            built[override] = await self.blocking(modelfile_template, override, built[None])
        return built[override or None]

    async def model_defaults(self, name: str) -> Any:
        """The stored model's Modelfile defaults (empty for a name the store does not know: the
        request then fails where the model is acquired, with its usual error)."""
        from ..errors import InvalidNameError, ModelNotFoundError
        from ..store.modelfile import ModelDefaults

        try:
            return (await self.blocking(self.store.get, name)).defaults
        except (ModelNotFoundError, InvalidNameError):
            return ModelDefaults()

    async def prepare_chat(self, lease: Lease, messages: Sequence[Mapping[str, Any]], *, defaults: Any = None,
                           **kwargs: Any) -> Any:
        """Render the chat prompt and pick its grammar (a :class:`llamarun.chat.ChatPlan`)."""
        from ..chat import prepare_chat

        if defaults:
            messages = defaults.conversation(messages)
        template = await self.template(lease, defaults.template if defaults else None)
        work = functools.partial(prepare_chat, template, messages, **kwargs)
        if template.is_builtin:  # llama.cpp renders built-in templates: its engine thread must do it
            return await self.engine_call(lease, lambda _model: work())
        return await self.blocking(work)

    async def tokenize(self, lease: Lease, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return await self.engine_call(
            lease, lambda m: m.tokenize(text, add_special=add_special, parse_special=parse_special))

    async def tokenize_parts(self, lease: Lease, parts: Sequence[tuple[str, bool]], *,
                             add_special: bool) -> list[int]:
        """Token ids of (text, parse_special) parts (a chat prompt's segments)."""
        return await self.engine_call(lease, lambda m: m.vocab.tokenize_parts(parts, add_special=add_special))

    # -- generation --------------------------------------------------------------

    def stream_interval(self, stream: bool) -> int:
        """Tokens per chunk a request's output reaches the event loop in: the configured interval when
        streaming; otherwise only the first token and the end (no wake-up per token for nothing)."""
        return self.config.stream_interval if stream else MAX_STREAM_INTERVAL

    @staticmethod
    def submit(lease: Lease, spec: GenerationRequest) -> AsyncRequest:
        """Queue a generation; :class:`OverloadedError` (503) at once when the queue is full."""
        from ..runtime import is_embedding_model

        if is_embedding_model(lease.info):
            raise UnsupportedFeatureError(f'"{lease.name}" is an embedding model: it cannot generate text',
                                          field="model")
        return AsyncRequest(lease.runtime, spec)

    async def first_event(self, receive: Receive, request: AsyncRequest) -> Chunk | GenerationResult:
        """The first event of a request, so that errors before any output become a status code."""
        try:
            return await until_disconnect(receive, request.next_event())
        except BaseException:
            request.cancel()
            raise

    async def collect(self, receive: Receive, requests: Sequence[AsyncRequest]) -> list[Collected]:
        """Wait for whole generations; a client disconnect cancels them all."""
        async def gather() -> list[Collected]:
            tasks = [asyncio.ensure_future(collect(r)) for r in requests]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for task in tasks:
                    task.cancel()

        try:
            return await until_disconnect(receive, gather())
        finally:
            for r in requests:
                r.cancel()

