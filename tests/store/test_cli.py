"""The store commands through the real CLI entry point (exit codes 0 ok, 1 error, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamarun.cli.main import main

from .conftest import sha
from .servers import LocalServer


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLAMARUN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_show_cp_rm(home: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "create", "tiny", "--from", str(tiny_model_path), "-q")[0] == 0
    code, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "ID", "SIZE", "QUANTIZATION", "PARAMETERS", "MODIFIED"]
    assert lines[1].split()[:2] == ["tiny:latest", sha(tiny_model_path.read_bytes())[:12]] and "F32" in lines[1]
    assert run(capsys, "cp", "tiny", "tiny:two")[0] == 0
    code, out, _ = run(capsys, "ls", "--json")
    models = json.loads(out)["models"]
    assert code == 0 and [m["name"] for m in models] == ["tiny:latest", "tiny:two"]
    assert models[0]["details"]["architecture"] == "llama"
    code, out, _ = run(capsys, "show", "tiny", "--verbose")
    assert code == 0 and "context length  2048" in out and "general.name" in out and "<|im_start|>" in out
    code, out, _ = run(capsys, "show", "tiny:two", "--json")
    assert code == 0 and json.loads(out)["details"]["quantization"] == "F32"
    code, out, _ = run(capsys, "rm", "tiny", "tiny:two")
    assert code == 0 and out.splitlines() == ["deleted 'tiny:latest'", "deleted 'tiny:two' (blob removed)"]


def test_pull_url_with_progress_and_errors(home: Path, tiny_bytes: bytes, capsys: pytest.CaptureFixture[str],
                                           server: LocalServer) -> None:
    server.files["/m.gguf"] = tiny_bytes
    code, out, err = run(capsys, "pull", f"{server.url}/m.gguf", "--sha256", sha(tiny_bytes), "--name", "m:1")
    assert code == 0 and out.startswith(f"m:1  sha256:{sha(tiny_bytes)}") and "--sha256" in out
    assert "success" in err
    code, _, err = run(capsys, "pull", f"{server.url}/m.gguf", "--sha256", "0" * 64, "--name", "m:2")
    assert code == 1 and "Error:" in err and "expected" in err
    assert run(capsys, "show", "nope")[0] == 1
    code, _, err = run(capsys, "rm", "../etc")
    assert code == 1 and "invalid model name" in err


def test_verify_and_gc(home: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create", "tiny", "--from", str(tiny_model_path), "--quiet")
    code, out, _ = run(capsys, "verify", "-q")
    assert code == 0 and out.splitlines()[-1] == "1 checked, 0 bad"
    blob = home / "blobs" / f"sha256-{sha(tiny_model_path.read_bytes())}"
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    code, out, _ = run(capsys, "verify", "-q", "--delete")
    assert code == 1 and out.startswith("deleted") and not blob.exists()
    (home / "partial" / ("url-" + "d" * 40 + ".partial")).write_bytes(b"abc")
    code, out, _ = run(capsys, "gc")
    assert code == 0 and out.startswith("removed 1 partial files")


def test_usage_error_exit_code(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "show")[0] == 2
