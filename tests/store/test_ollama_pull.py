"""ollama:// pulls from a local Docker-v2/Ollama-style registry, and imports from a local Ollama folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llamarun.errors import (
    DigestMismatchError, DownloadError, InvalidNameError, ModelNotFoundError, NameInUseError,
)
from llamarun.store import ModelStore, PullProgress

from .conftest import leftovers, sha
from tinymodel import write_tiny_gguf

from .servers import LocalServer, Registry, ollama_handler

TEMPLATE = "{{ .System }}<|user|>{{ .Prompt }}"
LICENSE = "Apache License 2.0"


def test_registry_pull(store: ModelStore, root: Path, tiny_bytes: bytes) -> None:
    registry = Registry()
    digest = registry.add_model("library/tiny", "q8", tiny_bytes, template=TEMPLATE, license=LICENSE)
    with LocalServer(ollama_handler(registry)) as srv:
        events: list[PullProgress] = []
        model = store.pull(f"ollama://127.0.0.1:{srv.port}/library/tiny:q8", insecure=True, progress=events.append)
        paths = [r.path for r in srv.gets()]
    assert model.name == "tiny:q8" and model.digest == digest and model.path.read_bytes() == tiny_bytes
    assert model.manifest["verified_by"] == "Ollama registry digest"
    assert model.manifest["ollama"] == {"template": TEMPLATE, "license": LICENSE}
    assert paths[0] == "/v2/library/tiny/manifests/q8"
    assert f"/v2/library/tiny/blobs/{digest}" in paths and f"/storage/{digest[7:]}" in paths  # 307 followed
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and f"pulling {digest[7:19]}" in statuses
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert store.show("tiny:q8").to_json()["ollama"]["license"] == LICENSE
    assert leftovers(root) == []


def test_registry_namespace_names_the_model(store: ModelStore, tiny_bytes: bytes) -> None:
    registry = Registry()
    registry.add_model("someone/thing", "latest", tiny_bytes)
    with LocalServer(ollama_handler(registry)) as srv:
        assert store.pull(f"ollama://127.0.0.1:{srv.port}/someone/thing", insecure=True).name == "someone/thing:latest"


def test_another_registry_never_takes_over_a_stored_name(store: ModelStore, tmp_path: Path,
                                                          tiny_bytes: bytes) -> None:
    """ollama://HOST/library/NAME drops the host from the name: from a registry other than Ollama's own,
    the name is derived and a pull refuses to re-point one that holds another model."""
    other = write_tiny_gguf(tmp_path / "other.gguf", seed=7)
    kept = store.create("tiny:q8", other)
    registry = Registry()
    registry.add_model("library/tiny", "q8", tiny_bytes)
    with LocalServer(ollama_handler(registry)) as srv:
        with pytest.raises(NameInUseError):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/tiny:q8", insecure=True)
    assert store.get("tiny:q8").digest == kept.digest


def test_registry_wrong_blob_bytes(store: ModelStore, root: Path, tiny_bytes: bytes) -> None:
    registry = Registry()
    digest = registry.add_model("library/tiny", "latest", tiny_bytes)
    registry.blobs[digest[7:]] = tiny_bytes[:-1] + b"\x01"  # same size, different bytes
    with LocalServer(ollama_handler(registry)) as srv:
        with pytest.raises(DigestMismatchError):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/tiny", insecure=True)
    assert list((root / "blobs").iterdir()) == [] and not store.has("tiny")
    assert leftovers(root) == []


def test_registry_size_mismatch_is_refused_without_retry(store: ModelStore, tiny_bytes: bytes) -> None:
    registry = Registry()
    digest = registry.add_model("library/tiny", "latest", tiny_bytes, size=len(tiny_bytes) + 1)
    with LocalServer(ollama_handler(registry)) as srv:
        with pytest.raises(DownloadError, match="expected"):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/tiny", insecure=True)
        assert len(srv.gets(f"/storage/{digest[7:]}")) == 1


def test_registry_huge_layer_size_is_a_disk_error_not_an_allocation(store: ModelStore, tiny_bytes: bytes) -> None:
    from llamarun.errors import DiskFullError

    registry = Registry()
    digest = registry.add_model("library/tiny", "latest", tiny_bytes, size=2**62)
    with LocalServer(ollama_handler(registry)) as srv:
        with pytest.raises(DiskFullError, match="free"):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/tiny", insecure=True)
        assert srv.gets(digest) == []  # refused before the blob transfer started


def test_registry_unknown_model(store: ModelStore) -> None:
    with LocalServer(ollama_handler(Registry())) as srv:
        with pytest.raises(DownloadError, match="404"):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/nope:latest", insecure=True)


def _ollama_dir(base: Path, data: bytes, *, digest: str | None = None) -> Path:
    models = base / "ollama-models"
    hexd = hashlib.sha256(data).hexdigest()
    (models / "blobs").mkdir(parents=True)
    (models / "blobs" / f"sha256-{hexd}").write_bytes(data)
    tmpl = TEMPLATE.encode()
    (models / "blobs" / f"sha256-{hashlib.sha256(tmpl).hexdigest()}").write_bytes(tmpl)
    manifest = {"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest or f"sha256:{hexd}", "size": len(data)},
        {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{hashlib.sha256(tmpl).hexdigest()}",
         "size": len(tmpl)},
    ]}
    folder = models / "manifests" / "registry.ollama.ai" / "library" / "tiny"
    folder.mkdir(parents=True)
    (folder / "1b").write_text(json.dumps(manifest))
    return models


def test_import_from_local_ollama(store: ModelStore, tmp_path: Path, tiny_bytes: bytes,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    models = _ollama_dir(tmp_path, tiny_bytes)
    monkeypatch.setenv("OLLAMA_MODELS", str(models))
    model = store.pull("ollama-local:tiny:1b")
    assert model.name == "tiny:1b" and model.digest == f"sha256:{sha(tiny_bytes)}"
    assert model.manifest["ollama"]["template"] == TEMPLATE and model.source.startswith("ollama-local:")
    with pytest.raises(ModelNotFoundError):
        store.pull("ollama-local:tiny:2b", ollama_models=models)


def test_import_from_local_ollama_verifies(store: ModelStore, tmp_path: Path, tiny_bytes: bytes) -> None:
    models = _ollama_dir(tmp_path, tiny_bytes)
    blob = models / "blobs" / f"sha256-{sha(tiny_bytes)}"
    blob.write_bytes(tiny_bytes[:-1] + b"\x02")
    with pytest.raises(DigestMismatchError):
        store.pull("ollama-local:tiny:1b", ollama_models=models)
    assert not store.has("tiny:1b")


def test_import_with_hostile_local_manifest(store: ModelStore, tmp_path: Path, tiny_bytes: bytes) -> None:
    models = _ollama_dir(tmp_path, tiny_bytes, digest="sha256:../../../../etc/passwd")
    with pytest.raises(InvalidNameError):
        store.pull("ollama-local:tiny:1b", ollama_models=models)
