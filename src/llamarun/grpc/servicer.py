"""``llamarun.v1.Llamarun``: each RPC a thin translation onto the serving layer; every exception
becomes a status from the one table (:mod:`.status`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ..errors import InvalidParameterError
from ..serving import Service, codes_of, embed_texts, load_options
from .generate import Generations
from .requests import keep_alive_of, load_options_of, require_model
from .status import status_of
from .v1 import llamarun_pb2 as pb
from .v1 import llamarun_pb2_grpc as pb_grpc

__all__ = ["LlamarunServicer"]

R = TypeVar("R")
_MAX_EMBED_INPUTS = 4096


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    status = status_of(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _unary(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Exceptions of a unary RPC -> its status."""
    @functools.wraps(method)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # every error becomes a status
            await _abort(context, exc)
            raise  # not reached: abort raises

    return call


class LlamarunServicer(pb_grpc.LlamarunServicer):
    """The RPCs of one server over its :class:`Service`."""

    def __init__(self, service: Service, generations: Generations | None = None) -> None:
        self.service = service
        self.generations = generations or Generations(service)

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext,
                       ) -> AsyncIterator[pb.GenerateResponse]:
        sent = False
        try:
            async for response in self.generations.stream(request, context):
                sent = True
                yield response
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # every error becomes a status
            if sent:
                codes = codes_of(exc)
                yield pb.GenerateResponse(request_id=request.request_id, error=pb.Error(
                    code=codes.grpc, reason=codes.bridge, message=status_of(exc).details))
            await _abort(context, exc)

    @_unary
    async def Complete(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        return await self.generations.complete(request, context)

    @_unary
    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> pb.AbortResponse:
        if not request.request_id:
            raise InvalidParameterError("request_id is required", field="request_id")
        return pb.AbortResponse(aborted=self.generations.abort(request.request_id))

    @_unary
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        model = require_model(request.model)
        if not request.inputs or len(request.inputs) > _MAX_EMBED_INPUTS:
            raise InvalidParameterError(f"inputs must hold 1 to {_MAX_EMBED_INPUTS} texts", field="inputs")
        dimensions = request.dimensions if request.HasField("dimensions") else None
        if dimensions is not None and dimensions < 1:
            raise InvalidParameterError("dimensions must be at least 1", field="dimensions")
        lease = await self.service.acquire(model, None, keep_alive_of(request))
        with lease:
            out = await embed_texts(self.service, lease, list(request.inputs), truncate=request.truncate,
                                    normalize=request.normalize if request.HasField("normalize") else True,
                                    dimensions=dimensions)
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=v.tolist()) for v in out.vectors],
                                prompt_tokens=out.n_tokens)

    @_unary
    async def Tokenize(self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext) -> pb.TokenizeResponse:
        lease = await self.service.acquire(require_model(request.model))
        with lease:
            ids = await self.service.tokenize(
                lease, request.text, add_special=request.add_special if request.HasField("add_special") else True,
                parse_special=request.parse_special)
        return pb.TokenizeResponse(token_ids=ids)

    @_unary
    async def Detokenize(self, request: pb.DetokenizeRequest, context: grpc.aio.ServicerContext,
                         ) -> pb.DetokenizeResponse:
        lease = await self.service.acquire(require_model(request.model))
        with lease:
            n_vocab, tokens = lease.info.n_vocab, list(request.token_ids)
            if any(not 0 <= t < n_vocab for t in tokens):
                raise InvalidParameterError(f"token_ids must be in 0..{n_vocab - 1}", field="token_ids")
            text = await self.service.engine_call(
                lease, lambda m: m.detokenize(tokens, special=request.special))
        return pb.DetokenizeResponse(text=text)

    @_unary
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext,
                         ) -> pb.ListModelsResponse:
        stored = await self.service.blocking(self.service.store.list)
        loaded = {s.name for s in self.service.manager.status()}
        return pb.ListModelsResponse(models=[
            pb.ModelEntry(name=m.name, digest=m.digest, size_bytes=m.size, loaded=m.name in loaded) for m in stored])

    @_unary
    async def ModelInfo(self, request: pb.ModelInfoRequest, context: grpc.aio.ServicerContext,
                        ) -> pb.ModelInfoResponse:
        details = await self.service.blocking(self.service.store.show, require_model(request.model))
        return _model_info(details, self.service.manager.status())

    @_unary
    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext,
                        ) -> pb.LoadModelResponse:
        model = require_model(request.model)
        keep_alive = keep_alive_of(request)
        if keep_alive == 0:
            raise InvalidParameterError("keep_alive_s 0 would unload the model: call UnloadModel",
                                        field="keep_alive_s")
        lease = await self.service.acquire(model, load_options(load_options_of(request.load)), keep_alive)
        with lease:
            return pb.LoadModelResponse(name=lease.name, context_length=lease.config.n_ctx,
                                        slots=lease.config.n_slots)

    @_unary
    async def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext,
                          ) -> pb.UnloadModelResponse:
        model = require_model(request.model)
        await self.service.blocking(self.service.manager.resolve, model)  # NOT_FOUND for unknown names
        unloaded = await self.service.blocking(self.service.manager.unload, model)
        return pb.UnloadModelResponse(unloaded=bool(unloaded))

    @_unary
    async def GetLoads(self, request: pb.GetLoadsRequest, context: grpc.aio.ServicerContext) -> pb.GetLoadsResponse:
        return pb.GetLoadsResponse(models=model_loads(self.service), in_flight=len(self.generations.calls))


def model_loads(service: Service) -> list[pb.ModelLoad]:
    """Per loaded (or loading) model: slots busy and free, queue depth, KV cache use."""
    snapshots = {name: runtime.snapshot() for name, runtime in service.manager.runtimes()}
    loads = []
    for s in service.manager.status():
        snap = snapshots.get(s.name)
        slots = s.config.n_slots
        busy = snap.running if snap else 0
        loads.append(pb.ModelLoad(
            name=s.name, state=s.state, slots=slots, busy_slots=busy, free_slots=max(0, slots - busy),
            queue_depth=snap.queue_depth if snap else 0, kv_cells_used=snap.kv_cells_used if snap else 0,
            kv_cells_total=snap.kv_cells_total if snap else 0, kv_usage=snap.kv_usage if snap else 0.0,
            leases=s.in_use))
    return loads


def _model_info(details: Any, status: list[Any]) -> pb.ModelInfoResponse:
    from ..serving.capabilities import model_capabilities

    gguf, model = details.gguf, details.model
    summary = gguf.summary()
    template = model.defaults.template or gguf.chat_template or ""
    capabilities = model_capabilities(gguf.metadata, summary.get("architecture") or "", template)
    loaded = next((s.config.n_ctx for s in status if s.name == model.name), 0)
    return pb.ModelInfoResponse(
        name=model.name, digest=model.digest, architecture=summary.get("architecture") or "",
        quantization=str(summary.get("quantization") or ""), parameter_count=int(summary.get("parameter_count") or 0),
        context_length=int(summary.get("context_length") or 0), loaded_context=loaded, chat_template=template,
        capabilities=capabilities)
