"""`bench`, `version`, help texts, shell completion and exit codes, run as a person would."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clitools import cli

OWN_COMMANDS = ["run", "bench", "version", "ps"]


def test_bench_json_on_the_tiny_model(tiny_model_path: Path):
    proc = cli("bench", str(tiny_model_path), "--reps", "2", "--levels", "1,3", "--prompt-tokens", "48",
               "--gen-tokens", "6", "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["architecture"] == "llama" and result["threads"] == 1
    assert result["pp"]["test"] == "pp48" and result["tg"]["test"] == "tg6"
    for rate in (result["pp"], result["tg"]):
        assert len(rate["samples"]) == 2 and rate["tokens_per_s"] > 0
    levels = result["concurrency"]
    assert [level["streams"] for level in levels] == [1, 3]
    for level in levels:
        assert level["generated_tokens"] == 6 * level["streams"]  # every stream ran to its length
        assert level["tokens_per_s"] > 0 and 0 < level["ttft_p50_s"] <= level["ttft_p95_s"] <= level["wall_s"]


def test_bench_table(tiny_model_path: Path):
    proc = cli("bench", str(tiny_model_path), "-r", "1", "-l", "2", "-p", "16", "-n", "4")
    assert proc.returncode == 0, proc.stderr
    for text in ("pp16", "tg4", "streams", "TTFT p50"):
        assert text in proc.stdout


@pytest.mark.parametrize("levels", ["0", "a,b", "1,,100", ""])
def test_bench_bad_levels_is_a_usage_error(tiny_model_path: Path, levels: str):
    proc = cli("bench", str(tiny_model_path), "--levels", levels)
    assert proc.returncode == 2, proc.stderr
    assert "stream counts" in proc.stderr


def test_version():
    text = cli("version")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("llamarun ")
    assert "llama-cpp-python " in text.stdout and "llama.cpp CPU" in text.stdout
    data = json.loads(cli("version", "--json").stdout)
    import llamarun

    assert data["llamarun"] == llamarun.__version__
    assert data["llama_cpp_python"]
    assert "CPU" in data["llama_cpp_system_info"]
    if sys.platform.startswith("linux"):  # built by the install (optional elsewhere)
        assert data["native_draw"] is True and "sampling draw in C" in text.stdout


@pytest.mark.parametrize("command", OWN_COMMANDS)
def test_help_has_examples(command: str):
    proc = cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout
    assert f"llamarun {command}" in proc.stdout


def test_top_level_help_lists_every_command():
    proc = cli("--help")
    assert proc.returncode == 0
    for command in OWN_COMMANDS:
        assert command in proc.stdout


@pytest.mark.parametrize("args", [["no-such-command"], ["run", "--no-such-flag"], ["bench", "--reps", "0"],
                                  ["run", "smollm2", "hi", "--temperature", "-1"]])
def test_usage_errors_exit_2(args: list[str]):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Usage:" in proc.stderr


def test_run_with_empty_stdin_is_a_usage_error(home: Path):
    proc = cli("run", "tiny", stdin="", home=home)
    assert proc.returncode == 2
    assert "no prompt" in proc.stderr


def test_shell_completion_of_model_names(tiny_home: Path):
    env = {**os.environ, "LLAMARUN_HOME": str(tiny_home), "_LLAMARUN_COMPLETE": "complete_bash",
           "COMP_WORDS": "llamarun run ti", "COMP_CWORD": "2"}
    proc = subprocess.run([sys.executable, "-m", "llamarun"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "tiny" in proc.stdout.split()
    # --show-completion detects the shell it runs under: run it under bash, as a user's shell would
    # (launched without a shell above it, e.g. from a service, it finds none and refuses)
    command = shlex.join([sys.executable, "-m", "llamarun", "--show-completion"]) + "; exit $?"  # bash stays its parent
    script = subprocess.run(["bash", "-c", command],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert script.returncode == 0 and "_LLAMARUN_COMPLETE" in script.stdout, script.stderr
