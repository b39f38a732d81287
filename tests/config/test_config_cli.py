"""`llamarun config show` through the real command line: values, sources, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamarun.cli.main import main


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMARUN_")}
    return subprocess.run(
        [sys.executable, "-m", "llamarun", *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_config_show_json_reports_value_and_source_of_every_layer(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('port = 8001\nhost = "0.0.0.0"\nthreads = 3\n')
    done = run_cli(["config", "show", "--json", "--set", "port=8003"],
                   {"LLAMARUN_CONFIG": str(path), "LLAMARUN_THREADS": "5", "LLAMARUN_API_KEY": "s3cret"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    settings = out["settings"]
    assert out["config_file"] == str(path)
    assert settings["port"] == {"value": 8003, "source": "flag --port"}
    assert settings["threads"] == {"value": 5, "source": "environment variable LLAMARUN_THREADS"}
    assert settings["host"] == {"value": "0.0.0.0", "source": f"file {path}"}
    assert settings["n_ctx"] == {"value": 0, "source": "default"}
    assert settings["api_key"]["value"] == "********" and "s3cret" not in done.stdout


def test_config_show_invalid_file_value_exits_1_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("port = 99999\n")
    done = run_cli(["config", "show"], {"LLAMARUN_CONFIG": str(path)})
    assert done.returncode == 1
    assert "'port'" in done.stderr and str(path) in done.stderr and "Traceback" not in done.stderr


def test_config_show_table_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('default_model = "other"\n')
    monkeypatch.setenv("LLAMARUN_CONFIG", str(path))
    monkeypatch.delenv("LLAMARUN_PORT", raising=False)
    assert main(["config", "show"]) == 0
    table = capsys.readouterr().out
    assert "default_model" in table and "other" in table and "auto" in table
    assert main(["config", "path"]) == 0
    assert str(path) in capsys.readouterr().out


def test_config_bad_set_syntax_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "port"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err


def test_config_show_durations_and_sizes_as_written() -> None:
    env = {"LLAMARUN_MEMORY_BUDGET": "8GiB", "LLAMARUN_SHUTDOWN_TIMEOUT": "90"}
    table = run_cli(["config", "show"], {**env, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table.stdout.splitlines()
            if line.count("│") >= 3}
    assert rows["keep_alive"] == "5m" and rows["request_timeout"] == "10m"
    assert rows["shutdown_timeout"] == "1m30s" and rows["memory_budget"] == "8GiB"
    assert "300.0" not in table.stdout and "600.0" not in table.stdout
    out = json.loads(run_cli(["config", "show", "--json"], env).stdout)["settings"]
    assert out["keep_alive"] == {"value": 300.0, "source": "default", "text": "5m"}  # numbers stay numbers
    assert out["memory_budget"]["value"] == 8 << 30 and out["memory_budget"]["text"] == "8GiB"
