"""hf:// pulls through huggingface_hub against a local HF-style resolve endpoint (HF_ENDPOINT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llamarun.errors import DigestMismatchError, DownloadError, ModelNotFoundError
from llamarun.store import ModelStore

from .conftest import leftovers, sha
from .servers import HfRepo, LocalServer, file_handler, hf_handler

TOKEN = "hf_testtoken123"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[HfRepo, LocalServer, LocalServer]]:
    with LocalServer(file_handler) as cdn:
        repo = HfRepo(cdn)
        with LocalServer(hf_handler(repo)) as hub_server:
            monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
            monkeypatch.setenv("HF_TOKEN", TOKEN)
            monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
            yield repo, hub_server, cdn


def test_hf_pull_verified_with_token_kept_on_the_hub(store: ModelStore, root: Path, hub, tiny_bytes: bytes) -> None:
    repo, hub_server, cdn = hub
    repo.files[("someone/Tiny-GGUF", "quant/Tiny-Q8_0.gguf")] = tiny_bytes
    model = store.pull("hf://someone/Tiny-GGUF/quant/Tiny-Q8_0.gguf")
    assert model.name == "tiny-q8_0:latest" and model.digest == f"sha256:{sha(tiny_bytes)}"
    assert model.manifest["verified_by"] == "Hugging Face LFS sha256"
    assert model.source == f"hf://someone/Tiny-GGUF/quant/Tiny-Q8_0.gguf@{repo.commit}"
    assert model.manifest["huggingface"]["revision"] == repo.commit
    resolves = [r for r in hub_server.requests if "/resolve/" in r.path]  # (the hub client may ask other things)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in resolves)
    assert [(r.method, r.path.split("/")[4]) for r in resolves] == [("HEAD", "main"), ("GET", repo.commit)]
    assert len(cdn.gets()) == 1 and "authorization" not in cdn.gets()[0].headers  # token never leaves the hub
    assert leftovers(root) == []


def test_hf_revision_and_wrong_lfs_sha(store: ModelStore, root: Path, hub, tiny_bytes: bytes) -> None:
    repo, hub_server, _ = hub
    repo.files[("a/b", "x.gguf")] = tiny_bytes
    repo.lie_sha256 = "1" * 64
    with pytest.raises(DigestMismatchError, match="1111"):
        store.pull("hf://a/b/x.gguf@v1.0")
    resolves = [(r.method, r.path) for r in hub_server.requests if "/resolve/" in r.path]
    assert resolves == [("HEAD", "/a/b/resolve/v1.0/x.gguf"), ("GET", f"/a/b/resolve/{repo.commit}/x.gguf")]
    assert list((root / "blobs").iterdir()) == [] and leftovers(root) == []


def test_hf_size_mismatch_is_refused_before_the_body(store: ModelStore, hub, tiny_bytes: bytes) -> None:
    repo, _, cdn = hub
    repo.files[("a/b", "x.gguf")] = tiny_bytes
    repo.lie_size = len(tiny_bytes) - 1
    with pytest.raises(DownloadError, match="expected"):
        store.pull("hf://a/b/x.gguf")
    assert len(cdn.gets()) == 1  # a size mismatch is not retried


def test_hf_missing_file_is_model_not_found(store: ModelStore, hub) -> None:
    with pytest.raises(ModelNotFoundError, match="hf://a/b/nope.gguf"):
        store.pull("hf://a/b/nope.gguf")


def test_hf_cache_hit_copies_without_downloading(store: ModelStore, tmp_path: Path, hub, tiny_bytes: bytes) -> None:
    repo, _, cdn = hub
    repo.files[("a/b", "x.gguf")] = tiny_bytes
    snapshot = tmp_path / "hf-cache" / "models--a--b" / "snapshots" / repo.commit
    snapshot.mkdir(parents=True)
    (snapshot / "x.gguf").write_bytes(tiny_bytes)
    model = store.pull("hf://a/b/x.gguf")
    assert model.path.read_bytes() == tiny_bytes and cdn.gets() == []
