"""Ollama: the registry protocol (``ollama://[host/]namespace/model:tag``) and local Ollama installations.

The registry speaks the Docker v2 protocol: ``GET /v2/<ns>/<model>/manifests/<tag>``
gives a manifest whose layers name blobs by digest; the layer with media type
``application/vnd.ollama.image.model`` is the GGUF file, fetched from
``/v2/<ns>/<model>/blobs/<digest>`` and verified against that digest.  Small
layers (template, system prompt, license, parameters) are fetched, verified
and recorded in our manifest.  Every digest is validated before it is used in
a URL or a path.  ``ollama-local:[host/][namespace/]model[:tag]`` imports the
same from a local Ollama models folder (``$OLLAMA_MODELS`` or
``~/.ollama/models``), verifying the blob while copying it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DigestMismatchError, DownloadError, InvalidNameError, ModelNotFoundError
from ..blobs import BlobInfo, ingest_stream, iter_file
from ..download import BlobRequest, download_blob
from ..names import derive_name, normalize_digest
from ..progress import PullProgress
from ..transfer import fetch_bytes
from .base import FetchContext, PullPlan, pull_label

__all__ = [
    "MODEL_MEDIA_TYPE",
    "OllamaLayer",
    "OllamaLocalSource",
    "OllamaRef",
    "OllamaRegistrySource",
    "parse_ollama_local",
    "parse_ollama_manifest",
    "parse_ollama_ref",
    "registry_base",
]

DEFAULT_REGISTRY = "registry.ollama.ai"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
_TEXT_LAYERS = {
    "application/vnd.ollama.image.template": "template",
    "application/vnd.ollama.image.system": "system",
    "application/vnd.ollama.image.license": "license",
    "application/vnd.ollama.image.params": "params",
}
_MAX_TEXT_LAYER = 1 << 20
_MAX_LAYERS = 64
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?$")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class OllamaRef:
    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def default_name(self) -> str:
        name = derive_name(self.model)
        if self.namespace != "library":
            name = f"{derive_name(self.namespace)}/{name}"
        return f"{name}:{self.tag}"


@dataclass(frozen=True)
class OllamaLayer:
    media_type: str
    digest: str  # hex, validated
    size: int


def parse_ollama_ref(body: str, *, what: str = "Ollama model") -> OllamaRef:
    """``[host/][namespace/]model[:tag]`` -> :class:`OllamaRef`, validated."""
    segments = body.split("/") if isinstance(body, str) and len(body) <= 512 and "\x00" not in body else []
    if not 1 <= len(segments) <= 3:
        raise InvalidNameError(f"invalid {what} {str(body)[:200]!r}: expected [host/]namespace/model:tag")
    host = segments[0] if len(segments) == 3 else DEFAULT_REGISTRY
    namespace = segments[-2] if len(segments) >= 2 else "library"
    model, sep, tag = segments[-1].partition(":")
    tag = tag if sep else "latest"
    valid = _HOST.fullmatch(host) and _PART.fullmatch(namespace) and _PART.fullmatch(model) and _TAG.fullmatch(tag)
    if not valid or any(".." in p for p in (host, namespace, model, tag)):
        raise InvalidNameError(f"invalid {what} {body[:200]!r}: expected [host/]namespace/model:tag")
    return OllamaRef(host.lower(), namespace, model, tag)


def parse_ollama_manifest(data: bytes, where: str) -> tuple[OllamaLayer, list[OllamaLayer]]:
    """The model layer and the small text layers of a manifest; every digest validated."""
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise DownloadError(f"{where} is not valid JSON: {exc}") from None
    layers_raw = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers_raw, list) or len(layers_raw) > _MAX_LAYERS:
        raise DownloadError(f"{where} is not an Ollama manifest (no layer list of at most {_MAX_LAYERS})")
    layers = []
    for item in layers_raw:
        if not isinstance(item, dict) or not isinstance(item.get("mediaType"), str):
            raise DownloadError(f"{where} has a malformed layer")
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DownloadError(f"{where} has a layer with an invalid size {str(size)[:40]!r}")
        layers.append(OllamaLayer(item["mediaType"], normalize_digest(str(item.get("digest"))), size))
    models = [layer for layer in layers if layer.media_type == MODEL_MEDIA_TYPE]
    if not models:
        raise DownloadError(f"{where} has no model layer ({MODEL_MEDIA_TYPE})")
    texts = [layer for layer in layers if layer.media_type in _TEXT_LAYERS and layer.size <= _MAX_TEXT_LAYER]
    return models[0], texts


def _text_extras(texts: list[OllamaLayer], read: Callable[[OllamaLayer], bytes]) -> dict[str, Any]:
    """Template, system prompt, license and parameters, each verified against its digest."""
    extras: dict[str, Any] = {}
    for layer in texts:
        data = read(layer)
        if hashlib.sha256(data).hexdigest() != layer.digest:
            raise DigestMismatchError(f"the {_TEXT_LAYERS[layer.media_type]} layer sha256:{layer.digest} does not "
                                      "match its bytes; nothing was stored")
        text = data.decode("utf-8", "replace")
        key = _TEXT_LAYERS[layer.media_type]
        if key == "params":
            try:
                extras[key] = json.loads(text)
            except ValueError:
                extras[key] = text
        elif key == "license" and key in extras:
            extras[key] += "\n\n" + text
        else:
            extras[key] = text
    return extras


REGISTRY_ENV = "LLAMARUN_OLLAMA_REGISTRY"
_BASE = re.compile(r"^(https?)://([A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?)/?$")


def registry_base(ref: OllamaRef, insecure: bool) -> str:
    """``scheme://host`` of the registry for ``ref``: ``$LLAMARUN_OLLAMA_REGISTRY`` (e.g. a mirror,
    ``http://127.0.0.1:5000``) stands in for Ollama's own registry; its ``http://`` allows plain HTTP."""
    configured = os.environ.get(REGISTRY_ENV, "").strip()
    if configured and ref.host == DEFAULT_REGISTRY:
        match = _BASE.fullmatch(configured)
        if match is None or ".." in configured:
            raise ConfigError(f"{REGISTRY_ENV}={configured[:200]!r} is not a registry address: "
                              "expected https://host[:port] (or http:// for a local one)",
                              key=REGISTRY_ENV, source="environment")
        return f"{match.group(1)}://{match.group(2).lower()}"
    return f"{'http' if insecure else 'https'}://{ref.host}"


@dataclass(frozen=True)
class OllamaRegistrySource:
    ref: OllamaRef

    def plan(self, ctx: FetchContext) -> PullPlan:
        base = f"{registry_base(self.ref, ctx.insecure)}/v2/{self.ref.namespace}/{self.ref.model}"
        url = f"{base}/manifests/{self.ref.tag}"
        data = fetch_bytes(url, policy=ctx.policy, headers={"Accept": _MANIFEST_ACCEPT})
        model, texts = parse_ollama_manifest(data, f"the manifest at {url}")

        def read(layer: OllamaLayer) -> bytes:
            return fetch_bytes(f"{base}/blobs/sha256:{layer.digest}", policy=ctx.policy, limit=layer.size)

        extras = _text_extras(texts, read)
        blob_url = f"{base}/blobs/sha256:{model.digest}"

        def fetch(fctx: FetchContext, expected: str | None, key: str) -> BlobInfo:
            req = BlobRequest(blob_url, key, sha256=expected, size=model.size, label=pull_label(expected, "model"))
            return download_blob(fctx.layout, req, fctx.policy, fctx.emit)

        # The name drops the host: from another registry than Ollama's own it is derived, and a pull
        # from it never takes over a name that holds another source's model (llama3.2:1b).
        return PullPlan(source=f"ollama://{self.ref}", default_name=self.ref.default_name(), fetch=fetch,
                        sha256=model.digest, size=model.size, verified_by="Ollama registry digest",
                        extra={"ollama": extras} if extras else {},
                        name_derived=self.ref.host != DEFAULT_REGISTRY)


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{what} does not exist: {path}") from None
    except OSError as exc:
        raise DownloadError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise DownloadError(f"{what} {path} is larger than {limit} bytes")
    return data


def default_ollama_models() -> Path:
    configured = os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


@dataclass(frozen=True)
class OllamaLocalSource:
    ref: OllamaRef

    def plan(self, ctx: FetchContext) -> PullPlan:
        root = ctx.ollama_models or default_ollama_models()
        r = self.ref
        path = root / "manifests" / r.host / r.namespace / r.model / r.tag
        data = _read_bounded(path, ctx.policy.max_document_bytes, f"the Ollama manifest of {r}")
        model, texts = parse_ollama_manifest(data, f"the Ollama manifest {path}")

        def blob(layer: OllamaLayer) -> Path:
            return root / "blobs" / f"sha256-{layer.digest}"

        extras = _text_extras(texts, lambda layer: _read_bounded(blob(layer), layer.size, "an Ollama blob"))
        model_path = blob(model)

        def fetch(fctx: FetchContext, expected: str | None, key: str) -> BlobInfo:
            if not model_path.is_file():
                raise ModelNotFoundError(f"the Ollama blob {model_path} is missing")
            fctx.emit(PullProgress(f"importing {model_path.name[:19]} from Ollama"))
            digest = f"sha256:{expected}" if expected else ""
            return ingest_stream(
                fctx.layout, iter_file(model_path), expected_sha256=expected, expected_size=model.size, key=key,
                what=f"the Ollama blob {model_path}",
                progress=lambda n: fctx.emit(PullProgress(pull_label(expected, "model"), digest, model.size, n)),
            )

        return PullPlan(source=f"ollama-local:{r}", default_name=r.default_name(), fetch=fetch,
                        sha256=model.digest, size=model.size, verified_by="Ollama manifest digest",
                        extra={"ollama": extras} if extras else {})


def parse_ollama_local(text: str) -> OllamaLocalSource:
    body = text.removeprefix("ollama-local:").removeprefix("//")
    return OllamaLocalSource(parse_ollama_ref(body, what="local Ollama model"))


def parse_ollama_registry(text: str) -> OllamaRegistrySource:
    return OllamaRegistrySource(parse_ollama_ref(text.removeprefix("ollama://"), what="Ollama model"))
