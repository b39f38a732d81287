"""OpenAI's API: chat completions, completions, embeddings and models."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..config import parse_keep_alive
from ..errors import InvalidParameterError, LlamarunError, UnsupportedFeatureError
from ..runtime import AsyncRequest, Lease
from ..types import Chunk, GenerationResult, TokenLogprob
from .errors import error_body, status_of
from .ollama_embed import embed_texts
from .ollama_turn import token_pieces
from .openai_schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, EmbeddingRequest
from .params import openai_request, with_modelfile_sampling
from .service import Collected, Service, check_finished, request_timeout
from .streaming import SseTemplate, WatchedStreamingResponse, sse

__all__ = ["openai_router"]

logger = logging.getLogger(__name__)

SSE = "text/event-stream"
FINGERPRINT = "llamarun"


def _finish(result: GenerationResult, tool_calls: bool = False) -> str:
    if tool_calls:
        return "tool_calls"
    # a deadline is "length", as llama-server ends its time limit (t_max_predict_ms): one of the
    # finish reasons the official clients declare
    return "length" if result.finish_reason.value in ("length", "deadline") else "stop"


def _usage(results: Sequence[GenerationResult]) -> dict[str, Any]:
    prompt = results[0].prompt_tokens if results else 0
    cached = results[0].cached_tokens if results else 0
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def _keep_alive(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_keep_alive(value)  # negative: forever; above 1e9 s refused
    except ValueError as exc:
        raise InvalidParameterError(str(exc), field="keep_alive") from None


def _message(m: ChatMessage) -> dict[str, Any]:
    content = m.content
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type")
            if kind in ("text", "input_text"):
                parts.append(str(part.get("text", "")))
            else:
                raise UnsupportedFeatureError(f"message content of type {str(kind)[:40]!r} is not supported "
                                              "(text only)", field="messages")
        content = "".join(parts)
    role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
    message: dict[str, Any] = {"role": role, "content": content or ""}
    if m.tool_calls:
        message["tool_calls"] = m.tool_calls
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    if m.name:
        message["name"] = m.name
    return message


def _chat_logprobs(items: Sequence[TokenLogprob], piece: Any) -> dict[str, Any]:
    def entry(token: int, logprob: float) -> dict[str, Any]:
        text = piece(token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [{**entry(lp.token, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]}
                        for lp in items]}


def _completion_logprobs(items: Sequence[TokenLogprob], piece: Any, offset: int = 0) -> dict[str, Any]:
    tokens, offsets, position = [], [], offset
    for lp in items:
        text = piece(lp.token)
        tokens.append(text)
        offsets.append(position)
        position += len(text)
    return {"tokens": tokens, "token_logprobs": [lp.logprob for lp in items],
            "top_logprobs": [{piece(t): v for t, v in lp.top} for lp in items], "text_offset": offsets}


class _Job:
    """The n choices of one request, their lease, and the response's identity."""

    def __init__(self, service: Service, lease: Lease, requests: list[AsyncRequest], *, model: str, prefix: str,
                 timeout: float | None) -> None:
        self.service, self.lease, self.requests = service, lease, requests
        self.model, self.timeout = model, timeout
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def close(self) -> None:
        for r in self.requests:
            r.cancel()
        self.lease.release()

    async def merged(self, firsts: list[Any]) -> AsyncIterator[tuple[int, Chunk | GenerationResult]]:
        """Events of every choice as they come, tagged with the choice index."""
        if len(self.requests) == 1:  # the common case: no tasks, no queue
            event = firsts[0]
            while True:
                yield 0, event
                if isinstance(event, GenerationResult):
                    return
                event = await self.requests[0].next_event()
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

        async def pump(index: int, request: AsyncRequest, first: Chunk | GenerationResult) -> None:
            event: Any = first
            try:
                while True:
                    await queue.put((index, event))
                    if isinstance(event, GenerationResult):
                        return
                    event = await request.next_event()
            except LlamarunError as exc:
                await queue.put((index, exc))

        pairs = enumerate(zip(self.requests, firsts, strict=True))
        tasks = [asyncio.ensure_future(pump(i, r, f)) for i, (r, f) in pairs]
        try:
            pending = len(tasks)
            while pending:
                index, event = await queue.get()
                if isinstance(event, LlamarunError):
                    raise event
                if isinstance(event, GenerationResult):
                    pending -= 1
                yield index, event
        finally:
            for task in tasks:
                task.cancel()


def openai_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    async def submit_all(request: Request, lease: Lease, specs: list[Any]) -> list[AsyncRequest]:
        n_vocab = lease.info.n_vocab
        for token in specs[0].sampling.logit_bias if specs else ():
            if token >= n_vocab:
                raise InvalidParameterError(f"logit_bias: token id {token} is outside the vocabulary "
                                            f"(0..{n_vocab - 1})", field="logit_bias")
        submitted: list[AsyncRequest] = []
        try:
            for spec in specs:
                submitted.append(service.submit(lease, spec))
        except BaseException:
            for r in submitted:
                r.cancel()
            raise
        return submitted

    async def firsts(request: Request, job: _Job) -> list[Chunk | GenerationResult]:
        events = [await service.first_event(request.receive, r) for r in job.requests]
        for event in events:
            if isinstance(event, GenerationResult):
                check_finished(event, job.timeout)
        return events

    @router.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        timeout = request_timeout(body.timeout, request.headers, service.config.request_timeout)
        messages = [_message(m) for m in body.messages]
        defaults = await service.model_defaults(body.model)
        body = with_modelfile_sampling(body, defaults.parameters, has_max=body.max_tokens is not None
                                       or body.max_completion_tokens is not None)
        lease = await service.acquire(request.receive, body.model, None,
                                      _keep_alive(body.keep_alive))
        try:
            plan = await service.prepare_chat(
                lease, messages, defaults=defaults, tools=body.tools or None, tool_choice=body.tool_choice,
                parallel_tool_calls=bool(body.parallel_tool_calls), response_format=body.response_format)
            top = (body.top_logprobs or 1) if body.logprobs else 0
            max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
            specs = [openai_request(body, plan.prompt_input, max_tokens=max_tokens, grammar=plan.grammar, timeout=timeout,
                                    logprobs=top, seed_offset=i, add_special=False, parse_special=True,
                                    stream_interval=service.stream_interval(body.stream),
                                    metadata=lease.info.metadata)
                     for i in range(body.n)]
            job = _Job(service, lease, await submit_all(request, lease, specs), model=body.model,
                       prefix="chatcmpl", timeout=timeout)
        except BaseException:
            lease.release()
            raise
        try:
            if not body.stream:
                return JSONResponse(await chat_whole(job, plan, request, body.logprobs))
            first = await firsts(request, job)
        except BaseException:
            job.close()
            raise
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return WatchedStreamingResponse(chat_stream(job, plan, first, usage, body.logprobs), media_type=SSE,
                                        on_close=[job.close])

    async def chat_whole(job: _Job, plan: Any, request: Request, logprobs: bool) -> dict[str, Any]:
        try:
            collected = await service.collect(request.receive, job.requests)
        finally:
            job.close()
        choices = []
        for index, c in enumerate(collected):
            check_finished(c.result, job.timeout)
            output = plan.parse(c.result.text)
            message: dict[str, Any] = {"role": "assistant", "content": output.content or None}
            if output.thinking:
                message["reasoning_content"] = output.thinking
            if output.tool_calls:
                message["tool_calls"] = [call.to_openai() for call in output.tool_calls]
            else:
                message["content"] = output.content
            choice: dict[str, Any] = {"index": index, "message": message, "logprobs": None,
                                      "finish_reason": _finish(c.result, bool(output.tool_calls))}
            if logprobs:
                choice["logprobs"] = _chat_logprobs(c.logprobs, await token_pieces(service, job.lease, c.logprobs))
            choices.append(choice)
        return {"id": job.id, "object": "chat.completion", "created": job.created, "model": job.model,
                "system_fingerprint": FINGERPRINT, "choices": choices,
                "usage": _usage([c.result for c in collected])}

    async def chat_stream(job: _Job, plan: Any, first: list[Any], usage: bool, logprobs: bool) -> AsyncIterator[bytes]:
        parsers = [plan.stream_parser() for _ in job.requests]
        results: list[GenerationResult] = []

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> bytes:
            if finish is None and lp is None and delta.keys() == {"content"}:
                return text_chunks[index].render(delta["content"])
            return sse(chat_chunk(index, delta, finish, lp))

        def chat_chunk(index: int, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> dict[str, Any]:
            return {"id": job.id, "object": "chat.completion.chunk", "created": job.created, "model": job.model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}]}

        text_chunks = [SseTemplate(chat_chunk(i, {"content": SseTemplate.hole()})) for i in range(len(job.requests))]

        try:
            for index in range(len(job.requests)):
                yield chunk(index, {"role": "assistant", "content": ""})
            async for index, event in job.merged(first):
                parser = parsers[index]
                if isinstance(event, Chunk):
                    if not event.text and not event.logprobs:
                        continue
                    delta = parser.feed(event.text)
                    lp = None
                    if logprobs and event.logprobs:
                        lp = _chat_logprobs(event.logprobs, await token_pieces(service, job.lease, event.logprobs))
                    if delta.content or delta.thinking or lp:
                        yield chunk(index, _delta(delta), lp=lp)
                    continue
                check_finished(event, job.timeout)
                results.append(event)
                delta, output = parser.finish()
                if delta.content or delta.thinking:
                    yield chunk(index, _delta(delta))
                if output.tool_calls:
                    calls = [{"index": i, **call.to_openai()} for i, call in enumerate(output.tool_calls)]
                    yield chunk(index, {"tool_calls": calls})
                yield chunk(index, {}, _finish(event, bool(output.tool_calls)))
            if usage:
                yield sse({"id": job.id, "object": "chat.completion.chunk", "created": job.created,
                           "model": job.model, "system_fingerprint": FINGERPRINT, "choices": [],
                           "usage": _usage(results)})
        except LlamarunError as exc:
            yield sse(error_body("/v1/", status_of(exc), str(exc)))
        yield sse("[DONE]")

    @router.post("/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        if body.echo or (body.best_of or 1) > 1 or body.suffix:
            field = "echo" if body.echo else "best_of" if (body.best_of or 1) > 1 else "suffix"
            raise UnsupportedFeatureError(f"{field} is not supported", field=field)
        prompt = body.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise UnsupportedFeatureError("one prompt per request (use n for several completions)",
                                              field="prompt")
            prompt = prompt[0]
        timeout = request_timeout(body.timeout, request.headers, service.config.request_timeout)
        defaults = await service.model_defaults(body.model)
        body = with_modelfile_sampling(body, defaults.parameters, has_max=body.max_tokens is not None)
        lease = await service.acquire(request.receive, body.model, None,
                                      _keep_alive(body.keep_alive))
        try:
            from ..grammar import response_format_grammar

            grammar = await service.blocking(response_format_grammar, body.response_format)
            max_tokens = 16 if body.max_tokens is None else body.max_tokens
            specs = [openai_request(body, prompt, max_tokens=max_tokens, grammar=grammar, timeout=timeout,
                                    logprobs=body.logprobs or 0, seed_offset=i,
                                    stream_interval=service.stream_interval(body.stream),
                                    metadata=lease.info.metadata) for i in range(body.n)]
            job = _Job(service, lease, await submit_all(request, lease, specs), model=body.model, prefix="cmpl",
                       timeout=timeout)
        except BaseException:
            lease.release()
            raise
        try:
            if not body.stream:
                return JSONResponse(await completion_whole(job, request, body.logprobs is not None))
            first = await firsts(request, job)
        except BaseException:
            job.close()
            raise
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return WatchedStreamingResponse(completion_stream(job, first, usage, body.logprobs is not None),
                                        media_type=SSE, on_close=[job.close])

    async def completion_whole(job: _Job, request: Request, logprobs: bool) -> dict[str, Any]:
        try:
            collected: list[Collected] = await service.collect(request.receive, job.requests)
        finally:
            job.close()
        choices = []
        for index, c in enumerate(collected):
            check_finished(c.result, job.timeout)
            lp = None
            if logprobs:
                lp = _completion_logprobs(c.logprobs, await token_pieces(service, job.lease, c.logprobs))
            choices.append({"index": index, "text": c.result.text, "logprobs": lp,
                            "finish_reason": _finish(c.result)})
        return {"id": job.id, "object": "text_completion", "created": job.created, "model": job.model,
                "system_fingerprint": FINGERPRINT, "choices": choices, "usage": _usage([c.result for c in collected])}

    async def completion_stream(job: _Job, first: list[Any], usage: bool, logprobs: bool) -> AsyncIterator[bytes]:
        results: list[GenerationResult] = []

        def completion_chunk(index: int, text: str, finish: str | None = None, lp: Any = None) -> dict[str, Any]:
            return {"id": job.id, "object": "text_completion", "created": job.created, "model": job.model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [{"index": index, "text": text, "logprobs": lp, "finish_reason": finish}]}

        text_chunks = [SseTemplate(completion_chunk(i, SseTemplate.hole())) for i in range(len(job.requests))]
        offsets = [0] * len(job.requests)  # text_offset of each choice's next token

        def chunk(index: int, text: str, finish: str | None = None, lp: Any = None) -> bytes:
            if finish is None and lp is None:
                return text_chunks[index].render(text)
            return sse(completion_chunk(index, text, finish, lp))

        try:
            async for index, event in job.merged(first):
                if isinstance(event, Chunk):
                    if event.text or event.logprobs:
                        lp = None
                        if logprobs and event.logprobs:
                            lp = _completion_logprobs(event.logprobs, await token_pieces(
                                service, job.lease, event.logprobs), offsets[index])
                            offsets[index] = lp["text_offset"][-1] + len(lp["tokens"][-1])
                        yield chunk(index, event.text, lp=lp)
                    continue
                check_finished(event, job.timeout)
                results.append(event)
                yield chunk(index, "", _finish(event))
            if usage:
                yield sse({"id": job.id, "object": "text_completion", "created": job.created, "model": job.model,
                           "choices": [], "usage": _usage(results)})
        except LlamarunError as exc:
            yield sse(error_body("/v1/", status_of(exc), str(exc)))
        yield sse("[DONE]")

    @router.post("/embeddings")
    async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
        raw = body.input
        if isinstance(raw, str):
            texts: list[Any] = [raw]
        elif raw and isinstance(raw[0], int):
            texts = [raw]
        else:
            texts = list(raw)
        if any(isinstance(t, str) and not t for t in texts):
            raise InvalidParameterError("input must not contain empty strings", field="input")
        lease = await service.acquire(request.receive, body.model)
        with lease:
            vectors, n_tokens = await embed_texts(service, lease, request, texts, True, True, body.dimensions)
        data = []
        for index, vector in enumerate(vectors):
            if body.encoding_format == "base64":
                value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                value = vector.tolist()
            data.append({"object": "embedding", "index": index, "embedding": value})
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    @router.get("/models")
    async def models() -> dict[str, Any]:
        stored = await service.blocking(service.store.list)
        return {"object": "list", "data": [_model(m) for m in stored]}

    @router.get("/models/{model:path}")
    async def model(model: str) -> dict[str, Any]:
        stored = await service.blocking(service.store.get, model)
        return _model(stored)

    return router


def _delta(delta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if delta.content:
        out["content"] = delta.content
    if delta.thinking:
        out["reasoning_content"] = delta.thinking
    return out


def _model(stored: Any) -> dict[str, Any]:
    created = stored.modified or stored.added
    return {"id": stored.name, "object": "model", "created": int(created.timestamp()) if created else 0,
            "owned_by": "llamarun"}
