"""Catalog short names (`llama3.2:1b`) pulled through ollama:// from a local registry (LLAMARUN_OLLAMA_REGISTRY)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamarun.errors import ConfigError, DigestMismatchError, ModelNotFoundError
from llamarun.store import ModelStore

from .conftest import leftovers
from .servers import LocalServer, Registry, ollama_handler


def test_short_name_resolves_to_the_configured_registry(store: ModelStore, root: Path, tiny_bytes: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    digest = registry.add_model("library/llama3.2", "1b", tiny_bytes)
    with LocalServer(ollama_handler(registry)) as srv:
        monkeypatch.setenv("LLAMARUN_OLLAMA_REGISTRY", f"http://127.0.0.1:{srv.port}")
        model = store.pull("llama3.2:1b")
        paths = [r.path for r in srv.gets()]
    assert model.name == "llama3.2:1b" and model.digest == digest and model.path.read_bytes() == tiny_bytes
    assert model.manifest["source"] == "ollama://registry.ollama.ai/library/llama3.2:1b"
    assert model.manifest["verified_by"] == "Ollama registry digest" and model.verified
    assert model.manifest["catalog"] == "llama3.2:1b"
    assert model.size == len(tiny_bytes)  # the registry's size, not the catalog's approximate one
    assert paths[0] == "/v2/library/llama3.2/manifests/1b"
    assert leftovers(root) == []


def test_wrong_bytes_from_the_registry_are_refused(store: ModelStore, root: Path, tiny_bytes: bytes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    digest = registry.add_model("library/qwen3", "0.6b", tiny_bytes)
    registry.blobs[digest[7:]] = tiny_bytes[:-1] + b"\x01"
    with LocalServer(ollama_handler(registry)) as srv:
        monkeypatch.setenv("LLAMARUN_OLLAMA_REGISTRY", f"http://127.0.0.1:{srv.port}")
        with pytest.raises(DigestMismatchError):
            store.pull("qwen3:0.6b")
    assert not store.has("qwen3:0.6b") and list((root / "blobs").iterdir()) == []


def test_bad_registry_setting_and_unknown_names(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARUN_OLLAMA_REGISTRY", "ftp://x/../y")
    with pytest.raises(ConfigError, match="LLAMARUN_OLLAMA_REGISTRY"):
        store.pull("gemma3:1b")
    with pytest.raises(ModelNotFoundError, match="not in the catalog"):
        store.pull("gemma3:27b-not-listed")


def test_cli_pull_of_a_short_name(tmp_path: Path, tiny_bytes: bytes) -> None:
    registry = Registry()
    registry.add_model("library/phi4-mini", "latest", tiny_bytes)
    with LocalServer(ollama_handler(registry)) as srv:
        env = {"LLAMARUN_HOME": str(tmp_path / "home"), "LLAMARUN_OLLAMA_REGISTRY": f"http://127.0.0.1:{srv.port}"}
        proc = subprocess.run([sys.executable, "-m", "llamarun", "pull", "phi4-mini", "-q"], capture_output=True,
                              text=True, timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    assert ModelStore(tmp_path / "home").get("phi4-mini").path.read_bytes() == tiny_bytes
