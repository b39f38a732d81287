"""`llamarun hw` as a person or a script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamarun.cli.main import main
from llamarun.hardware import detect_cpu, detect_memory


def test_hw_json_matches_detection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cpu, mem = detect_cpu(), detect_memory()
    assert data["cpu"]["model"] == cpu.model and data["cpu"]["logical_cores"] == cpu.logical_cores
    assert data["cpu"]["physical_cores"] == cpu.physical_cores
    assert data["memory"]["total"] == mem.total
    assert "CPU" in data["build"]["backends"] and isinstance(data["can_offload"], bool)
    assert isinstance(data["gpus"], list)


def test_hw_table_names_the_essentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw"]) == 0
    out = capsys.readouterr().out
    for label in ("cpu", "cores", "ram", "gpu", "llama.cpp backends", "gpu offload"):
        assert label in out
    assert detect_cpu().model.split()[0] in out


def test_hw_plan_for_a_model_file(smollm2_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "--model", str(smollm2_path), "--ctx", "2048", "--parallel", "2", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert (plan["n_ctx"], plan["parallel"], plan["n_ctx_total"]) == (2048, 2, 4096)
    assert plan["fits"] and plan["memory_total"] > plan["estimate"]["weights"] > 0
    assert main(["hw", "--model", str(smollm2_path)]) == 0
    out = capsys.readouterr().out
    assert "plan for" in out and "threads" in out and "needs" in out


def test_hw_recommend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "--recommend", "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)["recommendation"]
    fitting = {c["name"] for c in advice["candidates"] if c["fits"]}
    assert "smollm2" in fitting  # the default model fits any machine that runs these tests
    assert advice["name"] in fitting and advice["reasons"] and advice["name"] in advice["reasons"][0]
    assert main(["hw", "--recommend"]) == 0
    assert f"recommended model: {advice['name']}" in capsys.readouterr().out


def test_hw_usage_errors_exit_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARUN_")}
    done = subprocess.run([sys.executable, "-m", "llamarun", "hw", "--ctx", "-5"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--ctx" in done.stderr


def test_hw_unknown_model_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    assert main(["hw", "--model", str(not_gguf)]) == 1
    err = capsys.readouterr().err
    assert "GGUF" in err and str(not_gguf) in err


def test_hw_model_that_does_not_fit_exits_1(smollm2_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LLAMARUN_")}, "LLAMARUN_MEMORY_BUDGET": "1MiB"}
    for extra in ((), ("--json",)):
        done = subprocess.run([sys.executable, "-m", "llamarun", "hw", "--model", str(smollm2_path), *extra],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert "does not fit" in done.stderr
    shown = json.loads(done.stdout)["plan"]  # the plan is still printed for scripts
    assert shown["fits"] is False
    assert "does NOT fit" in " ".join(shown["reasons"])
