"""Ollama's model management: ``/api/tags``, ``show``, ``ps``, ``copy``, ``delete``, ``pull``, ``create``
and ``/api/version``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import InvalidParameterError, LlamarunError, ModelNotFoundError, UnsupportedFeatureError
from ...serving import Service
from ...serving.capabilities import model_capabilities
from ..context import ServiceDep
from ..ignored import IgnoredFieldsRoute
from .schemas import CopyRequest, CreateRequest, DeleteRequest, PullRequest, ShowRequest
from .stream import now_rfc3339, rfc3339, store_progress

__all__ = ["models_router"]


def models_router() -> APIRouter:
    router = APIRouter(tags=["ollama"], route_class=IgnoredFieldsRoute)
    router.add_api_route("/api/tags", tags, methods=["GET"])
    router.add_api_route("/api/show", show, methods=["POST"])
    router.add_api_route("/api/ps", ps, methods=["GET"])
    router.add_api_route("/api/copy", copy, methods=["POST"])
    router.add_api_route("/api/delete", delete, methods=["DELETE"])
    router.add_api_route("/api/pull", pull, methods=["POST"])
    router.add_api_route("/api/create", create, methods=["POST"])
    router.add_api_route("/api/version", version, methods=["GET"])
    return router


async def tags(service: ServiceDep) -> dict[str, Any]:
    return {"models": await service.blocking(_tags, service.store)}


async def show(body: ShowRequest, service: ServiceDep) -> dict[str, Any]:
    from ...chat import template_choice_of

    details = await service.blocking(service.store.show, body.model)
    choice = await service.blocking(template_choice_of, details)  # which template chats, and why
    return {**_show(details, body.verbose), "template_choice": choice.to_json()}


async def ps(service: ServiceDep) -> dict[str, Any]:
    return {"models": [_ps(s) for s in service.manager.status()]}


async def copy(body: CopyRequest, service: ServiceDep) -> Response:
    await service.blocking(service.store.copy, body.source, body.destination)
    return Response(status_code=200)


async def delete(body: DeleteRequest, service: ServiceDep) -> Response:
    await service.blocking(service.store.get, body.model)
    await service.blocking(service.manager.unload, body.model)
    await service.blocking(service.store.remove, body.model)
    return Response(status_code=200)


async def pull(body: PullRequest, request: Request, service: ServiceDep) -> Response:
    return await store_progress(service, request, body.stream,
                                lambda emit: service.store.pull(body.model, insecure=body.insecure, progress=emit))


async def create(body: CreateRequest, request: Request, service: ServiceDep) -> Response:
    return await store_progress(service, request, body.stream, lambda emit: _create(service, body, emit))


async def version(service: ServiceDep) -> dict[str, str]:
    return {"version": service.config.version}


def _create(service: Service, body: CreateRequest, emit: Callable[[Any], None]) -> Any:
    """A new model from a stored one (``from``) or one uploaded GGUF blob (``files``), with the
    Modelfile defaults given (``system``, ``parameters``, ``template``, ``messages``, ``license``)."""
    store = service.store
    if body.adapters:
        raise UnsupportedFeatureError("create does not support 'adapters'", field="adapters")
    from_, defaults = _create_defaults(body)
    if body.quantize:
        return _create_quantized(service, body, from_, defaults, emit)
    if body.files:
        if len(body.files) != 1:
            raise UnsupportedFeatureError("create takes exactly one GGUF file", field="files")
        (digest,) = body.files.values()
        source = store.layout.blob_path(digest)
        if not source.is_file():
            raise ModelNotFoundError(f"blob {digest} is not in the store: upload it first "
                                     f"(POST /api/blobs/{digest}) or pull it")
        model = store.create(body.model, source, progress=emit)
        return store.create_with_defaults(body.model, body.model, defaults, progress=emit) if defaults else model
    if from_:
        from ...store.derived import is_path_like

        if is_path_like(from_):
            raise InvalidParameterError("'from' names a stored model, never a file on the server: upload the "
                                        "GGUF (POST /api/blobs/<digest>) and pass it in 'files'", field="from")
        if not defaults:
            return store.copy(from_, body.model)
        return store.create_with_defaults(body.model, from_, defaults, progress=emit)
    raise InvalidParameterError("create needs 'from' (a stored model) or 'files' (a blob digest)", field="from")


def _create_quantized(service: Service, body: CreateRequest, from_: str | None, defaults: Any,
                      emit: Callable[[Any], None]) -> Any:
    """``quantize``: the ``from`` model (or the uploaded blob, stored first as the new name) quantized by
    llama.cpp into ``model``.  As in Ollama, only an unquantized (F16/BF16/F32) source is accepted:
    requantizing is ``llamarun quantize --allow-requantize``."""
    from ...quantizing import quantize_stored

    store = service.store
    if body.files:
        if len(body.files) != 1:
            raise UnsupportedFeatureError("create takes exactly one GGUF file", field="files")
        (digest,) = body.files.values()
        blob = store.layout.blob_path(digest)
        if not blob.is_file():
            raise ModelNotFoundError(f"blob {digest} is not in the store: upload it first")
        from_ = store.create(body.model, blob, progress=emit).name
    if not from_:
        raise InvalidParameterError("create with 'quantize' needs 'from' (a stored model) or 'files'", field="from")
    try:
        result = quantize_stored(from_, body.quantize or "", name=body.model, store=store, measure=False, emit=emit)
    except InvalidParameterError as exc:
        if exc.field == "allow_requantize":
            raise InvalidParameterError(f"quantize: {from_} is already quantized; only F16, BF16 or F32 models can "
                                        "be quantized here (on the command line: llamarun quantize "
                                        f"{from_} --type {body.quantize} --allow-requantize)",
                                        field="quantize") from None
        raise InvalidParameterError(f"quantize: {exc}", field="quantize") from None
    if defaults:
        return store.create_with_defaults(body.model, body.model, defaults, progress=emit)
    return result.model


def _create_defaults(body: CreateRequest) -> tuple[str | None, Any]:
    """``from`` and the defaults of a create request (its ``modelfile`` text, then its fields over it)."""
    from ...chat.override import check_modelfile_template
    from ...store.modelfile import ModelDefaults, parse_modelfile

    from_, base = body.from_, ModelDefaults()
    if body.modelfile:
        parsed = parse_modelfile(body.modelfile)
        from_, base = from_ or parsed.from_, parsed.defaults
    messages = [m.model_dump(include={"role", "content"}) for m in body.messages] if body.messages else None
    given = ModelDefaults.build(parameters=body.parameters, system=body.system, template=body.template,
                                messages=messages, license=body.license)
    defaults = given.over(base)
    if defaults.template:
        check_modelfile_template(defaults.template)
    return from_, defaults


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
    template = gguf.chat_template or ""
    capabilities = model_capabilities(gguf.metadata, summary.get("architecture") or "", template)
    modified = details.model.modified
    model = details.model
    defaults = model.defaults
    return {"license": "\n\n".join(defaults.license) or gguf.license or "",
            "modelfile": model.modelfile(), "parameters": defaults.parameters_text(),
            "template": defaults.template or template, "system": defaults.system or "",
            "messages": [dict(m) for m in defaults.messages] or None,
            "details": _details(summary), "model_info": info,
            "capabilities": capabilities, "modified_at": modified.isoformat() if modified else now_rfc3339()}


def _ps(status: Any) -> dict[str, Any]:
    info = status.info
    facts = {"architecture": info.architecture if info else "", "quantization": info.quantization if info else "",
             "parameters": _params(info.n_params) if info else ""}
    return {"name": status.name, "model": status.name, "size": status.size_bytes,
            "digest": status.digest.removeprefix("sha256:"), "details": _details(facts),
            "expires_at": rfc3339(status.expires_at), "size_vram": 0, "context_length": status.config.n_ctx,
            "state": status.state, "in_use": status.in_use, "slots": status.config.n_slots}


def _params(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
