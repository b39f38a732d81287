"""`llamarun run` as a person uses it: one-shot prompt, piped stdin, a GGUF path, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LLAMARUN = [sys.executable, "-m", "llamarun"]


def run(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LLAMARUN, *args], input=stdin, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_one_shot_answer(smollm2_path):
    proc = run("run", "smollm2", "What is the capital of France? Answer in one word.")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_prompt_from_stdin_and_verbose_timings(smollm2_path):
    proc = run("run", "smollm2", "--verbose", stdin="What is the capital of France? Answer in one word.\n")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout
    assert "tokens/s" in proc.stderr


def test_gguf_path(tiny_model_path):
    proc = run("run", str(tiny_model_path), "hello", "--max-tokens", "4")
    assert proc.returncode == 0, proc.stderr


def test_missing_model_is_an_error_with_advice(tmp_path):
    proc = run("run", "no-such-model", "hi", env={"LLAMARUN_HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "pull" in proc.stderr


def test_bad_file_is_an_error_not_a_crash(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF")
    proc = run("run", str(bad), "hi")
    assert proc.returncode == 1
    assert "bad.gguf" in proc.stderr


def test_usage_error_exit_code():
    proc = run("run", "--no-such-flag")
    assert proc.returncode == 2
