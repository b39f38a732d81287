"""What the CLI prints when something fails: one line that leads somewhere, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from clitools import cli

# A real failure inside a command: the store's list() breaks the way a bug would, then the real main() runs.
_BROKEN_LIST = """
import sys
import llamarun.store
from llamarun.cli.main import main

def broken(self, *args, **kwargs):
    raise RuntimeError("the disk exploded")

llamarun.store.ModelStore.list = broken
sys.exit(main(sys.argv[1:]))
"""


def _broken(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "LLAMARUN_HOME": str(home), "NO_COLOR": "1", **(env or {})}
    if not env or "LLAMARUN_DEBUG" not in env:
        full.pop("LLAMARUN_DEBUG", None)
    return subprocess.run([sys.executable, "-c", _BROKEN_LIST, *args], capture_output=True, text=True,
                          timeout=120, env=full)


def test_an_unexpected_error_is_one_line_with_the_way_to_details(home: Path):
    proc = _broken("list", home=home)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "`llamarun list` failed unexpectedly: RuntimeError: the disk exploded" in lines[0]
    assert "--debug" in lines[0] and "LLAMARUN_DEBUG=1" in lines[0]


def test_debug_flag_and_environment_print_the_traceback(home: Path):
    for args, env in ((("--debug", "list"), None), (("list",), {"LLAMARUN_DEBUG": "1"})):
        proc = _broken(*args, home=home, env=env)
        assert proc.returncode == 1
        assert "Traceback (most recent call last)" in proc.stderr
        assert "RuntimeError: the disk exploded" in proc.stderr
        assert proc.stderr.count("Traceback (most recent call last)") == 1  # the handler itself does not crash


def test_usage_errors_still_exit_2_without_a_traceback(home: Path):
    proc = cli("list", "--no-such-flag", home=home)
    assert proc.returncode == 2
    assert "No such option" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_on_a_taken_port_says_so_and_exits_1(home: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("serve", "--host", "127.0.0.1", "--port", str(port), home=home, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert "--port 0" in proc.stderr
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr


def _run_env(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("LLAMARUN_")}, "LLAMARUN_HOME": str(home),
            "NO_COLOR": "1", "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "llamarun", *args], capture_output=True, text=True, timeout=300,
                          env=full, stdin=subprocess.DEVNULL)


def test_run_memory_advice_names_run_flags_and_force_loads(tiny_home: Path):
    refused = _run_env("run", "tiny", "Hello", "-n", "2", home=tiny_home, LLAMARUN_MEMORY_BUDGET="1MiB")
    assert refused.returncode == 1
    assert "--ctx" in refused.stderr and "--force" in refused.stderr
    assert "--parallel" not in refused.stderr  # `run` has no such flag
    forced = _run_env("run", "tiny", "Hello", "-n", "2", "--force", home=tiny_home, LLAMARUN_MEMORY_BUDGET="1MiB")
    assert forced.returncode == 0, forced.stderr  # --force loads it (it failed advising --force)
    assert "Error" not in forced.stderr


def test_setting_errors_from_flags_name_the_flag_the_user_typed(home: Path):
    proc = _run_env("serve", "--ctx", "99999999", "--port", "0", home=home)
    assert proc.returncode == 1
    assert "flag --ctx" in proc.stderr and "--n-ctx" not in proc.stderr


def test_bench_memory_advice_names_bench_flags(tiny_model_path: Path, home: Path):
    proc = _run_env("bench", str(tiny_model_path), "-r", "1", "-l", "2", "-p", "8", "-n", "2", home=home,
                    LLAMARUN_MEMORY_BUDGET="1KiB")
    assert proc.returncode == 1
    assert "--levels" in proc.stderr and "--prompt-tokens" in proc.stderr
    assert "--force" not in proc.stderr and "--ctx" not in proc.stderr and "--parallel" not in proc.stderr
