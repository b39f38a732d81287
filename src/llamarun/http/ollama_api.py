"""Ollama's API: generate, chat, embed, the model store, ``/api/ps`` and ``/api/version``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import InvalidParameterError, LlamarunError, ModelNotFoundError, UnsupportedFeatureError
from ..runtime import AsyncRequest
from ..runtime.manager import Lease
from ..types import Chunk, GenerationResult, TokenLogprob
from .ollama_schemas import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    ShowRequest,
)
from .params import ollama_load_options, ollama_request
from .service import Service, check_finished, request_timeout
from .streaming import WatchedStreamingResponse, ndjson

__all__ = ["ollama_router"]

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _ns(seconds: float) -> int:
    return int(max(0.0, seconds) * 1e9)


def _rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _logprobs(items: Sequence[TokenLogprob], piece: Any) -> list[dict[str, Any]]:
    return [{"token": piece(lp.token), "logprob": lp.logprob,
             "top_logprobs": [{"token": piece(t), "logprob": v} for t, v in lp.top]} for lp in items]


def _final_fields(result: GenerationResult, lease: Lease, started: float) -> dict[str, Any]:
    t = result.timings
    return {
        "done": True,
        "done_reason": "length" if result.finish_reason.value == "length" else "stop",
        "total_duration": _ns(time.monotonic() - started),
        "load_duration": _ns(lease.load_s),
        "prompt_eval_count": result.prompt_tokens,
        "prompt_eval_duration": _ns(t.prompt_s),
        "eval_count": result.completion_tokens,
        "eval_duration": _ns(t.generate_s),
    }


def _check_unsupported(images: Any, template: str | None, suffix: str = "") -> None:
    if images:
        raise UnsupportedFeatureError("this server does not support images (no vision models)", field="images")
    if template:
        raise InvalidParameterError("template overrides are not accepted: the model's own chat template is "
                                    "used (use raw=true to send a fully formatted prompt)", field="template")
    if suffix:
        raise UnsupportedFeatureError("suffix (fill-in-the-middle) is not supported", field="suffix")


class _Pieces:
    """Token id -> text for logprobs (reads the vocabulary on the engine thread once per response)."""

    def __init__(self, mapping: dict[int, str]) -> None:
        self.mapping = mapping

    def __call__(self, token: int) -> str:
        return self.mapping.get(token, "")


async def _pieces(service: Service, lease: Lease, items: Sequence[TokenLogprob]) -> _Pieces:
    ids = sorted({lp.token for lp in items} | {t for lp in items for t, _ in lp.top})
    if not ids:
        return _Pieces({})
    mapping = await service.engine_call(
        lease, lambda m: {t: m.vocab.piece(t).decode("utf-8", "replace") for t in ids})
    return _Pieces(mapping)


class _Turn:
    """One generate/chat request in flight: its lease, runtime request and response shaping."""

    def __init__(self, service: Service, lease: Lease, areq: AsyncRequest, *, chat: bool, plan: Any,
                 model: str, started: float, timeout: float | None, context: list[int] | None,
                 logprobs: bool) -> None:
        self.service, self.lease, self.areq = service, lease, areq
        self.chat, self.plan, self.model, self.started = chat, plan, model, started
        self.timeout, self.context, self.logprobs = timeout, context, logprobs

    def close(self) -> None:
        self.areq.cancel()
        self.lease.release()

    def _line(self, text: str, thinking: str = "", **extra: Any) -> dict[str, Any]:
        line: dict[str, Any] = {"model": self.model, "created_at": now_rfc3339()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            line["message"] = message
        else:
            line["response"] = text
            if thinking:
                line["thinking"] = thinking
        line["done"] = False
        line.update(extra)
        return line

    def _final(self, result: GenerationResult, **extra: Any) -> dict[str, Any]:
        line = self._line("", **extra)
        line.update(_final_fields(result, self.lease, self.started))
        if self.context is not None:
            line["context"] = [*self.context, *result.token_ids]
        return line

    async def whole(self, receive: Any) -> dict[str, Any]:
        (collected,) = await self.service.collect(receive, [self.areq])
        result = collected.result
        check_finished(result, self.timeout)
        extra: dict[str, Any] = {}
        if self.logprobs:
            extra["logprobs"] = _logprobs(collected.logprobs, await _pieces(self.service, self.lease,
                                                                            collected.logprobs))
        if self.plan is None:
            return {**self._final(result, **extra), "response": result.text}
        output = self.plan.parse(result.text)
        line = self._final(result, **extra)
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": output.content}
            if output.thinking:
                message["thinking"] = output.thinking
            if output.tool_calls:
                message["tool_calls"] = [c.to_ollama() for c in output.tool_calls]
            line["message"] = message
        else:
            line["response"] = output.content
            if output.thinking:
                line["thinking"] = output.thinking
        return line

    async def stream(self, first: Chunk | GenerationResult) -> AsyncIterator[bytes]:
        parser = self.plan.stream_parser() if self.plan is not None else None
        event: Chunk | GenerationResult = first
        try:
            while True:
                if isinstance(event, GenerationResult):
                    check_finished(event, self.timeout)
                    yield await self._closing_lines(event, parser)
                    return
                if event.text or event.logprobs:
                    line = await self._chunk_line(event, parser)
                    if line is not None:
                        yield ndjson(line)
                event = await self.areq.next_event()
        except LlamarunError as exc:  # mid-stream failure: a final error line (status already sent)
            yield ndjson({"error": str(exc)})
        finally:
            self.areq.cancel()

    async def _chunk_line(self, chunk: Chunk, parser: Any) -> dict[str, Any] | None:
        thinking, text = "", chunk.text
        if parser is not None:
            delta = parser.feed(chunk.text)
            thinking, text = delta.thinking, delta.content
        extra: dict[str, Any] = {}
        if self.logprobs and chunk.logprobs:
            extra["logprobs"] = _logprobs(chunk.logprobs, await _pieces(self.service, self.lease, chunk.logprobs))
        if not text and not thinking and not extra:
            return None
        return self._line(text, thinking, **extra)

    async def _closing_lines(self, result: GenerationResult, parser: Any) -> bytes:
        out = b""
        if parser is not None:
            delta, output = parser.finish()
            if delta.content or delta.thinking:
                out += ndjson(self._line(delta.content, delta.thinking))
            if output.tool_calls and self.chat:
                line = self._line("")
                line["message"]["tool_calls"] = [c.to_ollama() for c in output.tool_calls]
                out += ndjson(line)
        return out + ndjson(self._final(result))


def ollama_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["ollama"])

    async def load_or_unload(model: str, keep_alive: float | None, request: Request, chat: bool,
                             options: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"model": model, "created_at": now_rfc3339()}
        base.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
        if keep_alive is not None and keep_alive == 0:
            await service.blocking(service.manager.resolve, model)  # 404 for unknown models
            await service.blocking(service.manager.unload, model)
            return {**base, "done": True, "done_reason": "unload"}
        lease = await service.acquire(request.receive, model, ollama_load_options(options), keep_alive)
        lease.release()
        return {**base, "done": True, "done_reason": "load"}

    def respond(line: dict[str, Any], stream: bool) -> Response:
        if stream:
            return Response(ndjson(line), media_type=NDJSON)
        return JSONResponse(line)

    async def start(turn: _Turn, request: Request, stream: bool) -> Response:
        """Answer with the whole result, or stream it once the first token (or error) is known."""
        if not stream:
            try:
                return JSONResponse(await turn.whole(request.receive))
            finally:
                turn.close()
        try:
            first = await service.first_event(request.receive, turn.areq)
        except BaseException:
            turn.close()
            raise
        return WatchedStreamingResponse(turn.stream(first), media_type=NDJSON, on_close=[turn.close])

    @router.post("/api/generate")
    async def generate(body: GenerateRequest, request: Request) -> Response:
        started = time.monotonic()
        _check_unsupported(body.images, body.template, body.suffix)
        if not body.prompt and not body.context:
            return respond(await load_or_unload(body.model, body.keep_alive, request, False, body.options),
                           body.stream)
        timeout = request_timeout(body.options.timeout if body.options else None, request.headers,
                                  service.config.request_timeout)
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        try:
            plan, prompt, context = None, body.prompt, None
            if body.raw:
                from ..grammar import response_format_grammar

                grammar = await service.blocking(response_format_grammar, body.format)
            else:
                messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
                    {"role": "user", "content": body.prompt}]
                plan = await service.prepare_chat(lease, messages, response_format=body.format,
                                                  think=_think(body.think, lease))
                prompt, grammar = plan.prompt, plan.grammar
            tokens: str | list[int] = prompt
            if body.context:
                context = [*body.context, *await service.tokenize(lease, prompt, add_special=not body.context,
                                                                  parse_special=True)]
                tokens = context
            spec = ollama_request(tokens, body.options, grammar=grammar, timeout=timeout,
                                  logprobs=_top(body.logprobs, body.top_logprobs), truncate=bool(body.truncate),
                                  add_special=body.raw, parse_special=True)
            areq = service.submit(lease, spec)
        except BaseException:
            lease.release()
            raise
        turn = _Turn(service, lease, areq, chat=False, plan=plan, model=body.model, started=started,
                     timeout=timeout, context=context, logprobs=body.logprobs)
        return await start(turn, request, body.stream)

    @router.post("/api/chat")
    async def chat(body: ChatRequest, request: Request) -> Response:
        started = time.monotonic()
        for m in body.messages:
            _check_unsupported(m.images, None)
        if not body.messages:
            return respond(await load_or_unload(body.model, body.keep_alive, request, True, body.options),
                           body.stream)
        timeout = request_timeout(body.options.timeout if body.options else None, request.headers,
                                  service.config.request_timeout)
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        try:
            messages = [_message(m) for m in body.messages]
            plan = await service.prepare_chat(lease, messages, tools=body.tools or None,
                                              tool_choice="auto" if body.tools else None,
                                              response_format=body.format, think=_think(body.think, lease))
            spec = ollama_request(plan.prompt, body.options, grammar=plan.grammar, timeout=timeout,
                                  logprobs=_top(body.logprobs, body.top_logprobs), truncate=bool(body.truncate),
                                  add_special=False, parse_special=True)
            areq = service.submit(lease, spec)
        except BaseException:
            lease.release()
            raise
        turn = _Turn(service, lease, areq, chat=True, plan=plan, model=body.model, started=started,
                     timeout=timeout, context=None, logprobs=body.logprobs)
        return await start(turn, request, body.stream)

    @router.post("/api/embed")
    async def embed(body: EmbedRequest, request: Request) -> dict[str, Any]:
        started = time.monotonic()
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        with lease:
            vectors, n_tokens = await embed_texts(service, lease, request, texts, body.truncate, True,
                                                  body.dimensions)
        return {"model": body.model, "embeddings": [v.tolist() for v in vectors],
                "total_duration": _ns(time.monotonic() - started), "load_duration": _ns(lease.load_s),
                "prompt_eval_count": n_tokens}

    @router.post("/api/embeddings")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
        lease = await service.acquire(request.receive, body.model, ollama_load_options(body.options),
                                      body.keep_alive)
        with lease:
            if not body.prompt:
                return {"embedding": []}
            vectors, _ = await embed_texts(service, lease, request, [body.prompt], True, False, None)
        return {"embedding": vectors[0].tolist()}

    @router.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {"models": await service.blocking(_tags, service.store)}

    @router.post("/api/show")
    async def show(body: ShowRequest) -> dict[str, Any]:
        details = await service.blocking(service.store.show, body.model)
        return _show(details, body.verbose)

    @router.get("/api/ps")
    async def ps() -> dict[str, Any]:
        return {"models": [_ps(s) for s in service.manager.status()]}

    @router.post("/api/copy")
    async def copy(body: CopyRequest) -> Response:
        await service.blocking(service.store.copy, body.source, body.destination)
        return Response(status_code=200)

    @router.delete("/api/delete")
    async def delete(body: DeleteRequest) -> Response:
        await service.blocking(service.store.get, body.model)
        await service.blocking(service.manager.unload, body.model)
        await service.blocking(service.store.remove, body.model)
        return Response(status_code=200)

    @router.post("/api/pull")
    async def pull(body: PullRequest, request: Request) -> Response:
        return await store_progress(service, request, body.stream,
                                    lambda emit: service.store.pull(body.model, insecure=body.insecure, progress=emit))

    @router.post("/api/create")
    async def create(body: CreateRequest, request: Request) -> Response:
        return await store_progress(service, request, body.stream, lambda emit: _create(service, body, emit))

    @router.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": service.config.version}

    return router


def _think(think: Any, lease: Lease) -> bool | None:
    if think is None or think is False:
        return None if think is None else False
    info = lease.info
    from ..chat import thinking_markers

    if thinking_markers(info.chat_template) is None:
        raise UnsupportedFeatureError(f'"{lease.name}" does not support thinking', field="think")
    return True


def _top(logprobs: bool, top: int) -> int:
    return max(1, top) if logprobs else 0


def _message(m: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.content}
    if m.tool_calls:
        message["tool_calls"] = [{"type": "function", "function": {"name": c.function.name,
                                                                    "arguments": c.function.arguments}}
                                 for c in m.tool_calls]
    if m.tool_name:
        message["name"] = m.tool_name
    if m.tool_call_id:
        message["tool_call_id"] = m.tool_call_id
    if m.thinking:
        message["thinking"] = m.thinking
    return message


async def embed_texts(service: Service, lease: Lease, request: Request, texts: Sequence[Any], truncate: bool,
                      normalize: bool, dimensions: int | None) -> tuple[list[np.ndarray], int]:
    """Embed each text on the model's engine thread; the client leaving stops the work."""
    embedder = lease.embedder()

    async def run() -> tuple[list[np.ndarray], int]:
        vectors, total = [], 0
        for text in texts:
            item = await service.blocking(embedder.embed, text, truncate=truncate, normalize=normalize)
            vector = item.vector
            if dimensions is not None and dimensions < vector.shape[0]:
                vector = vector[:dimensions]
                norm = float(np.linalg.norm(vector))
                if normalize and norm > 0:
                    vector = vector / norm
            vectors.append(vector)
            total += item.n_tokens
        return vectors, total

    from .streaming import until_disconnect

    return await until_disconnect(request.receive, run())


async def store_progress(service: Service, request: Request, stream: bool, work: Any) -> Response:
    """Run a store operation in the pool; stream its progress events as NDJSON, or answer at the end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(event: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event.to_json())

    future = loop.run_in_executor(service.executor, work, emit)
    if not stream:
        await future
        return JSONResponse({"status": "success"})

    async def lines() -> AsyncIterator[bytes]:
        done = asyncio.ensure_future(asyncio.shield(future))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                finished, _ = await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
                if getter in finished:
                    yield ndjson(getter.result())
                    continue
                getter.cancel()
                while not queue.empty():
                    yield ndjson(queue.get_nowait())
                error = done.exception()
                if error is not None:
                    yield ndjson({"error": str(error)})
                return
        finally:
            done.cancel()

    # errors found before any transfer (bad name, unknown model) keep their status code
    first = await asyncio.wait({future}, timeout=0.05)
    if future in first[0] and future.exception() is not None:
        raise future.exception()  # type: ignore[misc]
    return WatchedStreamingResponse(lines(), media_type=NDJSON)


def _create(service: Service, body: CreateRequest, emit: Any) -> Any:
    store = service.store
    for name in ("quantize", "template", "system", "parameters", "messages", "modelfile"):
        if getattr(body, name):
            raise UnsupportedFeatureError(f"create does not support {name!r}: a model is a stored GGUF file "
                                          "under a new name", field=name)
    if body.files:
        if len(body.files) != 1:
            raise UnsupportedFeatureError("create takes exactly one GGUF file", field="files")
        (digest,) = body.files.values()
        source = store.layout.blob_path(digest)
        if not source.is_file():
            raise ModelNotFoundError(f"blob {digest} is not in the store: upload or pull it first")
        return store.create(body.model, source, progress=emit)
    if body.from_:
        return store.copy(body.from_, body.model)
    raise InvalidParameterError("create needs 'from' (a stored model) or 'files' (a blob digest)", field="from")


def _details(facts: dict[str, Any]) -> dict[str, Any]:
    arch = facts.get("architecture") or ""
    return {"parent_model": "", "format": "gguf", "family": arch, "families": [arch] if arch else None,
            "parameter_size": facts.get("parameters") or "", "quantization_level": facts.get("quantization") or ""}


def _tags(store: Any) -> list[dict[str, Any]]:
    tags = []
    for model in store.list():
        facts = model.facts
        if not facts:  # stored before facts were recorded: read the GGUF header
            try:
                facts = store.show(model.name).gguf.summary()
            except LlamarunError:
                facts = {}
        modified = model.modified or model.added
        tags.append({"name": model.name, "model": model.name,
                     "modified_at": modified.isoformat() if modified else now_rfc3339(),
                     "size": model.size, "digest": model.digest.removeprefix("sha256:"), "details": _details(facts)})
    return tags


def _show(details: Any, verbose: bool) -> dict[str, Any]:
    gguf = details.gguf
    summary = gguf.summary()
    info = {k: v for k, v in gguf.metadata_json().items()
            if verbose or not (k.startswith("tokenizer.ggml.") and isinstance(v, (list, dict)))}
    info.pop("tokenizer.chat_template", None)
    arch = summary.get("architecture") or ""
    pooling = gguf.metadata.get(f"{arch}.pooling_type")
    capabilities = ["embedding"] if isinstance(pooling, int) and pooling > 0 else ["completion", "embedding"]
    template = gguf.chat_template or ""
    if "tools" in template:
        capabilities.append("tools")
    from ..chat import thinking_markers

    if thinking_markers(template or None):
        capabilities.append("thinking")
    modified = details.model.modified
    return {"license": gguf.license or "", "modelfile": f"# llamarun stored model\nFROM {details.model.path}\n",
            "parameters": "", "template": template, "details": _details(summary), "model_info": info,
            "capabilities": capabilities, "modified_at": modified.isoformat() if modified else now_rfc3339()}


def _ps(status: Any) -> dict[str, Any]:
    info = status.info
    facts = {"architecture": info.architecture if info else "", "quantization": info.quantization if info else "",
             "parameters": _params(info.n_params) if info else ""}
    return {"name": status.name, "model": status.name, "size": status.size_bytes,
            "digest": status.digest.removeprefix("sha256:"), "details": _details(facts),
            "expires_at": _rfc3339(status.expires_at), "size_vram": 0, "context_length": status.config.n_ctx,
            "state": status.state, "in_use": status.in_use, "slots": status.config.n_slots}


def _params(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)

