"""Missing, empty, non-GGUF and truncated files give typed errors naming the file."""

from __future__ import annotations

import pytest

from llamarun.engine import Model
from llamarun.errors import GGUFFormatError, ModelLoadError


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError, match="nope.gguf"):
        Model(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(GGUFFormatError, match="empty.gguf"):
        Model(path)


def test_four_bytes_of_magic(tmp_path):
    path = tmp_path / "magic.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(GGUFFormatError, match="magic.gguf"):
        Model(path)


def test_not_gguf(tmp_path):
    path = tmp_path / "text.gguf"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(GGUFFormatError, match="text.gguf"):
        Model(path)


def test_directory(tmp_path):
    with pytest.raises(ModelLoadError):
        Model(tmp_path)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_smollm2(tmp_path, smollm2_path, fraction):
    data = smollm2_path.read_bytes()
    path = tmp_path / "truncated.gguf"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError, match="truncated.gguf"):
        Model(path)
