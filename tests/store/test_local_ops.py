"""create (copy / --link), list, show, cp, rm, verify and gc on a real store in a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llamarun.errors import GGUFFormatError, ModelLoadError, ModelNotFoundError, StoreError
from llamarun.store import ModelStore
from llamarun.store.locks import key_lock

from .conftest import leftovers, sha


def test_create_copies_a_checked_file(store: ModelStore, root: Path, tiny_model_path: Path,
                                      tiny_bytes: bytes) -> None:
    model = store.create("tiny", tiny_model_path)
    assert model.name == "tiny:latest" and model.path == root / "blobs" / f"sha256-{sha(tiny_bytes)}"
    assert model.path.read_bytes() == tiny_bytes and not model.linked
    assert model.source == f"file:{tiny_model_path.resolve()}" and model.facts["architecture"] == "llama"
    assert leftovers(root) == []


def test_create_refuses_bad_files(store: ModelStore, root: Path, tmp_path: Path, tiny_bytes: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny_bytes[:5000])
    with pytest.raises(GGUFFormatError, match="bad.gguf"):
        store.create("bad", bad)
    with pytest.raises(ModelLoadError, match="missing.gguf"):
        store.create("bad", tmp_path / "missing.gguf")
    assert not (root / "blobs").exists() or list((root / "blobs").iterdir()) == []
    assert not store.has("bad")


def test_create_link_references_the_file(store: ModelStore, root: Path, tmp_path: Path, tiny_bytes: bytes) -> None:
    path = tmp_path / "external.gguf"
    path.write_bytes(tiny_bytes)
    model = store.create("ext:v1", path, link=True)
    assert model.linked and model.path == path.resolve() and model.digest == f"sha256:{sha(tiny_bytes)}"
    assert not (root / "blobs").exists() or list((root / "blobs").iterdir()) == []
    assert all(check.ok for check in store.verify())
    store.remove("ext:v1")
    assert path.read_bytes() == tiny_bytes  # a linked file is never deleted
    store.create("ext:v1", path, link=True)
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(StoreError, match="changed size"):
        store.get("ext:v1")
    path.unlink()
    with pytest.raises(ModelNotFoundError, match="linked file"):
        store.get("ext:v1")


def test_list_show_cp_rm(store: ModelStore, root: Path, tiny_model_path: Path, tiny_bytes: bytes,
                         gguf_variant) -> None:
    other = root.parent / "other.gguf"
    other.write_bytes(gguf_variant(1))
    store.create("tiny", tiny_model_path)
    store.create("ns/other:q8", other)
    store.copy("tiny", "tiny:copy")
    assert [m.name for m in store.list()] == ["ns/other:q8", "tiny:copy", "tiny:latest"]
    details = store.show("tiny:copy")
    assert details.model.digest == store.get("tiny").digest and details.gguf.context_length == 2048
    assert details.to_json(verbose=True)["metadata"]["general.name"] == "tiny-random-llama"
    blob = store.get("tiny").path
    assert store.remove("tiny").blob_deleted is False and blob.exists()  # still named tiny:copy
    result = store.remove("tiny:copy")
    assert result.blob_deleted and not blob.exists()
    with pytest.raises(ModelNotFoundError):
        store.remove("tiny:copy")
    assert [m.name for m in store.list()] == ["ns/other:q8"]
    store.remove("ns/other:q8")
    assert list((root / "manifests").iterdir()) == []  # empty folders pruned


def test_overwriting_a_name_releases_the_old_blob(store: ModelStore, root: Path, tiny_model_path: Path,
                                                  gguf_variant) -> None:
    other = root.parent / "other.gguf"
    other.write_bytes(gguf_variant(2))
    first = store.create("m", tiny_model_path)
    second = store.create("m", other)
    assert first.digest != second.digest and not first.path.exists() and second.path.exists()


def test_verify_reports_and_deletes_corrupt_blobs(store: ModelStore, tiny_model_path: Path) -> None:
    model = store.create("tiny", tiny_model_path)
    assert [(c.status, c.names) for c in store.verify()] == [("ok", ("tiny:latest",))]
    data = bytearray(model.path.read_bytes())
    data[-1] ^= 0xFF
    os.chmod(model.path, 0o644)
    model.path.write_bytes(bytes(data))
    checks = store.verify()
    assert [c.status for c in checks] == ["corrupt"] and "hash to" in checks[0].detail
    assert [c.status for c in store.verify(delete=True)] == ["deleted"]
    assert [c.status for c in store.verify()] == ["missing"]
    with pytest.raises(ModelNotFoundError, match="blob is missing"):
        store.get("tiny")


def test_gc_removes_stale_partials_and_unused_blobs(store: ModelStore, root: Path, tiny_model_path: Path,
                                                    gguf_variant) -> None:
    kept = store.create("tiny", tiny_model_path)
    stale = root / "partial" / ("sha256-" + "b" * 64 + ".partial")
    stale.write_bytes(b"x" * 1000)
    (root / "partial" / ("sha256-" + "b" * 64 + ".json")).write_text("{}")
    busy_key = "url-" + "c" * 40
    busy = root / "partial" / f"{busy_key}.partial"
    busy.write_bytes(b"y" * 10)
    orphan = root / "blobs" / f"sha256-{sha(gguf_variant(3))}"
    orphan.write_bytes(gguf_variant(3))
    foreign = root / "partial" / "README.txt"
    foreign.write_text("not ours")
    with key_lock(store.layout, busy_key):  # a pull in progress holds its key
        report = store.gc()
    assert report.partials_removed == 2 and report.blobs_removed == (f"sha256:{sha(gguf_variant(3))}",)
    assert report.bytes_freed >= 1000 + len(gguf_variant(3))
    assert not stale.exists() and not orphan.exists() and busy.exists() and foreign.exists()
    assert kept.path.exists() and store.get("tiny") == kept


def test_create_from_a_blob_of_the_store_reuses_it(store: ModelStore, root: Path, tiny_model_path: Path) -> None:
    """What Ollama's /api/create does: name an existing blob; nothing is copied."""
    first = store.create("tiny", tiny_model_path)
    inode = first.path.stat().st_ino
    second = store.create("again", first.path)
    assert second.path == first.path and second.path.stat().st_ino == inode
    assert second.manifest["verified_by"] == "store blob" and leftovers(root) == []


def test_the_resolver_keeps_a_name_until_its_manifest_or_file_changes(store: ModelStore, tmp_path: Path,
                                                                      tiny_bytes: bytes, gguf_variant) -> None:
    from llamarun.serving import store_resolver

    store.create("m", _write(tmp_path / "a.gguf", tiny_bytes))
    resolve = store_resolver(store)
    first = resolve("m")
    reads = []
    real_get = store.get
    store.get = lambda name: reads.append(name) or real_get(name)  # type: ignore[method-assign]
    assert resolve("m") == first and reads == []  # unchanged: a stat, no manifest read
    store.create("m", _write(tmp_path / "b.gguf", gguf_variant(1)))  # the name now means another file
    second = resolve("m")
    assert reads == ["m"] and second.digest != first.digest
    linked = _write(tmp_path / "c.gguf", tiny_bytes)
    store.create("m", linked, link=True)
    assert resolve("m").path == linked.resolve()
    with open(linked, "ab") as f:
        f.write(b"x")  # the linked file changed under the store: the store's own check runs again
    with pytest.raises(StoreError, match="changed size"):
        resolve("m")
    store.remove("m")
    with pytest.raises(ModelNotFoundError):
        resolve("m")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
