"""Client commands (`ps`, `run --host`, `stop`) against a real `llamarun serve --api-key-file`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clitools import LLAMARUN, make_tiny_home, serving
from waiting import wait_until

KEY = "k3y-for-tests"


def _client(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARUN_")}
    return subprocess.run([*LLAMARUN, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**base, "LLAMARUN_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **env})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(URL, store, key file) of a real server that requires KEY; always stopped by PID."""
    root = tmp_path_factory.mktemp("keyed")
    home = make_tiny_home(root / "home", tiny_model_path)
    key_file = root / "key"
    key_file.write_text(KEY + "\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARUN_")}
    with serving(home, "--parallel", "1", "--ctx", "256", "--api-key-file", str(key_file), env=base) as url:
        yield url, home, key_file


def _loaded(url: str) -> list[str]:
    answer = httpx.get(f"{url}/api/ps", headers={"Authorization": f"Bearer {KEY}"}, timeout=30, trust_env=False)
    answer.raise_for_status()
    return [m["name"] for m in answer.json()["models"]]


def test_without_a_key_the_error_says_how_to_send_one(keyed: tuple[str, Path, Path]):
    url, home, _ = keyed
    proc = _client("ps", "--host", url, home=home)
    assert proc.returncode == 1
    assert "requires an API key" in proc.stderr and "--api-key" in proc.stderr and "LLAMARUN_API_KEY" in proc.stderr
    wrong = _client("ps", "--host", url, "--api-key", "nope", home=home)
    assert wrong.returncode == 1 and "refused the API key" in wrong.stderr


def test_every_way_of_giving_the_key(keyed: tuple[str, Path, Path]):
    url, home, key_file = keyed
    for args, env in ((("--api-key", KEY), {}), (("--api-key-file", str(key_file)), {}),
                      ((), {"LLAMARUN_API_KEY": KEY})):
        proc = _client("ps", "--host", url, *args, home=home, **env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("NAME")


def test_run_host_and_stop_with_the_key(keyed: tuple[str, Path, Path]):
    url, home, key_file = keyed
    ran = _client("run", "tiny", "hello", "-n", "3", "--host", url, "--api-key-file", str(key_file), home=home)
    assert ran.returncode == 0, ran.stderr
    assert _loaded(url) == ["tiny:latest"]
    stopped = _client("stop", "tiny", "--host", url, home=home, LLAMARUN_API_KEY=KEY)
    assert stopped.returncode == 0, stopped.stderr
    # unloaded at once when idle; a lease still being released defers it a moment
    wait_until(lambda: not _loaded(url), timeout=10, interval=0.1)
    assert _loaded(url) == []
    again = _client("stop", "tiny", "--host", url, home=home, LLAMARUN_API_KEY=KEY)
    assert again.returncode == 1 and 'model "tiny" is not loaded' in again.stderr
