"""Faults, with real processes and the tiny model: a pull killed with SIGKILL and restarted, a disk
that refuses writes during a pull and an upload, the engine thread dying under running requests, and
SIGTERM with a stream in flight on every frontend.

The full disk is a file-size limit on the process (RLIMIT_FSIZE, set with prlimit on a running
serve or before exec on `llamarun pull`): the kernel refuses the write that would pass it with EFBIG,
mid-chunk or at the last byte, as a full quota or a FAT32 disk does. Unlike a small tmpfs it needs
neither root nor mount(8), runs the same on every machine, and puts the failing write exactly where
the test wants it; ENOSPC on a real full file system is `tests/store/test_disk_full.py`'s (a 2 MB
tmpfs, in-process, as root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bridge_helpers import short_dir, start_bridge
from grpc_helpers import start_grpc_server
from serve_helpers import Server, start_server

from llamarun.errors import DiskFullError, EngineDeadError
from llamarun.store import ModelStore

from faultkit import (
    CHUNK,
    StoreWatcher,
    engine_fault_env,
    file_size_limit,
    model_server,
    pull_process,
    reaped,
    sha,
    store_leftovers,
)
from figures import record
from streams import LENGTH, STREAMS, Stream, Target, silence_end_of_generation
from waiting import wait_until

pytestmark = pytest.mark.timeout(120)

THROTTLE = 0.05  # seconds per 16 KiB chunk: the tiny model's 459 KiB take about 1.5 s to send
KILL_AFTER = 4 * CHUNK  # the pull is killed once its partial file holds at least this much
EMPTY = {"blobs": [], "manifests": [], "partial": []}
DRAIN_TOKENS = 900  # per stream (of a 1,024-token context): a few seconds for the 7 sharing the serve's engine


@pytest.fixture(scope="module")
def tiny_bytes(tiny_model_path: Path) -> bytes:
    return tiny_model_path.read_bytes()


@pytest.fixture(scope="module")
def endless_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """A store whose ``tiny`` never ends a greedy turn early (a stream's length is known in advance)."""
    folder = tmp_path_factory.mktemp("endless")
    model = silence_end_of_generation(Path(shutil.copy(tiny_model_path, folder / "endless.gguf")))
    ModelStore(folder / "home").create("tiny", model)
    return folder / "home"


def _partial_size(home: Path) -> int:
    """Bytes in the store's resumable partial file (0 when there is none)."""
    for path in (home / "partial").glob("*.partial") if (home / "partial").is_dir() else []:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            continue
    return 0


def _watching(home: Path) -> StoreWatcher:
    watcher = StoreWatcher(home)
    watcher.start()
    return watcher


def _pulled(home: Path, data: bytes, *, verified: bool) -> None:
    """The store holds ``tiny`` with exactly ``data``, checked, and nothing else."""
    store = ModelStore(home)
    model = store.get("tiny")
    assert model.digest == f"sha256:{sha(data)}" and model.path.read_bytes() == data
    assert model.verified is verified
    assert [c.status for c in store.verify()] == ["ok"]
    assert store_leftovers(home) == {"blobs": [f"sha256-{sha(data)}"], "manifests": ["tiny/latest.json"],
                                     "partial": []}


# -- 1. SIGKILL during a pull, then a restart ----------------------------------------------------------


def _kill_mid_transfer(proc: subprocess.Popen[str], home: Path, size: int) -> int:
    """SIGKILL ``proc`` (by PID) once the partial file holds KILL_AFTER bytes; returns what it holds
    once the process is gone."""
    assert wait_until(lambda: _partial_size(home) >= KILL_AFTER, timeout=60, interval=0.005), \
        "the pull never got going"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    kept = _partial_size(home)
    assert KILL_AFTER <= kept < size, f"not killed mid-transfer: {kept} of {size} bytes"
    assert store_leftovers(home)["blobs"] == [] and store_leftovers(home)["manifests"] == []
    return kept


def test_sigkill_during_a_cli_pull_then_a_rerun_resumes_and_verifies(tmp_path: Path, tiny_bytes: bytes) -> None:
    home = tmp_path / "home"
    with model_server(tiny_bytes, THROTTLE) as origin:
        url = f"{origin.url}/tiny.gguf"
        args = (url, "--sha256", sha(tiny_bytes), "--name", "tiny")
        watcher = _watching(home)
        with reaped(pull_process(home, *args)) as first:
            kept = _kill_mid_transfer(first, home, len(tiny_bytes))
        origin.faults.throttle = 0.0
        with reaped(pull_process(home, *args)) as again:
            out, err = again.communicate(timeout=60)
        watcher.stop()
        assert again.returncode == 0, err
        assert f"sha256:{sha(tiny_bytes)}" in out
        ranges = [g.headers.get("range") for g in origin.gets("/tiny.gguf")]
    assert ranges == [None, f"bytes={kept}-"]  # resumed where the killed process stopped, not from 0
    assert watcher.violations == [] and watcher.looks > 20, watcher.violations
    _pulled(home, tiny_bytes, verified=True)
    record("fault_sigkill_cli_pull", size=len(tiny_bytes), killed_at=kept, ranges=ranges, store_looks=watcher.looks)


def test_sigkill_of_serve_during_api_pull_then_a_restart_resumes(tmp_path: Path, tiny_bytes: bytes) -> None:
    """No digest given: the partial file is trusted again through the server's ETag (If-Range)."""
    home = tmp_path / "home"
    home.mkdir()
    with model_server(tiny_bytes, THROTTLE) as origin:
        url = f"{origin.url}/tiny.gguf"
        watcher = _watching(home)
        first = start_server(home)
        lines: list[str] = []
        with reaped(first.proc):
            puller = threading.Thread(target=_pull_lines, args=(first.url, url, lines), daemon=True)
            puller.start()
            kept = _kill_mid_transfer(first.proc, home, len(tiny_bytes))
        puller.join(30)
        assert not any('"success"' in line for line in lines)
        origin.faults.throttle = 0.0
        second = start_server(home)
        try:
            r = httpx.post(f"{second.url}/api/pull", json={"model": url, "stream": False}, timeout=60)
            assert r.status_code == 200 and r.json() == {"status": "success"}, r.text
        finally:
            assert second.stop() == 0, "".join(second.stderr)[-2000:]
        watcher.stop()
        gets = origin.gets("/tiny.gguf")
    assert [g.headers.get("range") for g in gets] == [None, f"bytes={kept}-"]
    assert gets[1].headers.get("if-range") == f'"{hashlib.md5(tiny_bytes).hexdigest()}"'  # the ETag it was sent
    assert watcher.violations == [] and watcher.looks > 20, watcher.violations
    _pulled(home, tiny_bytes, verified=False)  # no digest was given: computed, not verified against one
    record("fault_sigkill_serve_pull", size=len(tiny_bytes), killed_at=kept, store_looks=watcher.looks)


def _pull_lines(base: str, url: str, into: list[str]) -> None:
    try:
        with httpx.stream("POST", f"{base}/api/pull", json={"model": url}, timeout=60) as r:
            into.extend(r.iter_lines())
    except httpx.HTTPError:
        pass  # the server was killed under it


# -- 2. a full disk during a pull and during a blob upload --------------------------------------------

DISK_FULL = DiskFullError("").codes.http  # 507, from the error table


@pytest.mark.parametrize("where", ["mid_chunk", "last_byte"])
def test_full_disk_during_a_cli_pull_is_a_typed_error_and_leaves_nothing(tmp_path: Path, tiny_bytes: bytes,
                                                                         where: str) -> None:
    """``last_byte``: the kernel takes all but the last byte of the last chunk (a short write, no
    error): the rest is written again, so the pull fails on a full disk instead of a file one byte
    short of what was hashed."""
    limit = {"mid_chunk": 3 * CHUNK + 1000, "last_byte": len(tiny_bytes) - 1}[where]
    home = tmp_path / "home"
    with model_server(tiny_bytes) as origin:
        args = (f"{origin.url}/tiny.gguf", "--sha256", sha(tiny_bytes), "--name", "tiny")
        watcher = _watching(home)
        with reaped(pull_process(home, *args, file_limit=limit)) as failed:
            _, err = failed.communicate(timeout=60)
        watcher.stop()
        assert failed.returncode == 1, err
        assert err.strip().startswith("Error: ") and "file-size limit" in err and "existing models are intact" in err, err
        assert "Traceback" not in err and "unexpectedly" not in err, err
        assert len(origin.gets()) == 1  # a full disk is not retried
        assert store_leftovers(home) == EMPTY
        assert watcher.violations == [], watcher.violations
        with reaped(pull_process(home, *args)) as room:  # the same pull, with room: nothing left stands in its way
            _, err = room.communicate(timeout=60)
        assert room.returncode == 0, err
    _pulled(home, tiny_bytes, verified=True)


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    server = start_server(home)
    try:
        yield server
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]


def test_full_disk_during_api_pull_and_blob_upload_on_serve(empty_server: Server, tiny_bytes: bytes) -> None:
    server, home = empty_server, empty_server.home
    digest = f"sha256:{sha(tiny_bytes)}"
    watcher = _watching(home)
    with model_server(tiny_bytes) as origin:
        url = f"{origin.url}/tiny.gguf"
        with file_size_limit(server.proc.pid, 3 * CHUNK + 1000):
            answers = {
                "pull": httpx.post(f"{server.url}/api/pull", json={"model": url, "stream": False}, timeout=60),
                "upload": httpx.post(f"{server.url}/api/blobs/{digest}", content=tiny_bytes, timeout=60),
                "upload_chunked": httpx.post(f"{server.url}/api/blobs/{digest}", timeout=60,
                                             content=iter([tiny_bytes[i:i + CHUNK]
                                                           for i in range(0, len(tiny_bytes), CHUNK)])),
            }
            streamed = [json.loads(line) for line in httpx.post(
                f"{server.url}/api/pull", json={"model": url}, timeout=60).text.splitlines()]
            assert store_leftovers(home) == EMPTY
            assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 404
        for what, r in answers.items():
            assert r.status_code == DISK_FULL, (what, r.status_code, r.text)
            assert "file-size limit" in r.json()["error"], (what, r.text)
        assert "file-size limit" in streamed[-1]["error"] and not any(e.get("status") == "success" for e in streamed)
        # the limit lifted: the same server stores both
        assert httpx.post(f"{server.url}/api/blobs/{digest}", content=tiny_bytes, timeout=60).status_code == 201
        r = httpx.post(f"{server.url}/api/pull", json={"model": url, "stream": False}, timeout=60)
        assert r.status_code == 200, r.text
    watcher.stop()
    assert watcher.violations == [], watcher.violations
    assert store_leftovers(home) == {"blobs": [f"sha256-{sha(tiny_bytes)}"], "manifests": ["tiny/latest.json"],
                                     "partial": []}
    record("fault_full_disk_serve", statuses={k: r.status_code for k, r in answers.items()})


# -- 3. the engine thread dies -----------------------------------------------------------------------


def _generate(url: str, n: int) -> httpx.Response:
    return httpx.post(f"{url}/api/generate", timeout=60, json={
        "model": "tiny", "prompt": "hi", "raw": True, "stream": False, "options": {"num_predict": n, "temperature": 0}})


def test_engine_thread_death_fails_requests_health_says_error_next_request_reloads(
        endless_home: Path, tmp_path: Path) -> None:
    env, trigger = engine_fault_env(tmp_path)
    server = start_server(endless_home, "--parallel", "2", "--ctx", "2048", "--keep-alive", "-1",
                          "--preload", "tiny", env=env)
    try:
        target = Target(server.url, "", Path())
        streams = [Stream(name, target, 2000) for name in ("ollama_generate", "openai_chat")]
        for s in streams:
            s.start()
        assert all(s.started.wait(30) for s in streams)
        queued: list[httpx.Response] = []
        waiter = threading.Thread(target=lambda: queued.append(_generate(server.url, 8)), daemon=True)
        waiter.start()  # both slots are busy: it waits in the queue
        assert wait_until(lambda: server.health()["models"][0]["waiting"] == 1, timeout=30)
        assert server.metric("llamarun_model_loads_total") == 1
        trigger.touch()
        for s in streams:
            s.join(30)
        waiter.join(30)
        for s in streams:  # the stream's own error at its end, naming the engine's death
            assert s.end is not None and not s.end.normal and "died" in s.end.reason, (s.frontend, s.end)
        assert queued[0].status_code == EngineDeadError("").codes.http and "died" in queued[0].json()["error"]
        health = httpx.get(f"{server.url}/health", timeout=30)
        (model,) = health.json()["models"]
        assert health.status_code == 503 and health.json()["status"] == "error", health.text
        assert model["status"] == "error" and model["error"] and (model["running"], model["waiting"]) == (0, 0)
        reply = _generate(server.url, 4)  # the next request loads the model again
        assert reply.status_code == 200 and reply.json()["eval_count"] == 4, reply.text
        assert server.metric("llamarun_model_loads_total") == 2
        assert server.health()["status"] == "ok"
        assert "engine thread of tiny:latest died" in "".join(server.stderr)
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]
    record("fault_engine_death", stream_ends={s.frontend: s.end.reason[:80] for s in streams if s.end},
           queued_status=queued[0].status_code, health_status=health.status_code)


# -- 4. SIGTERM with a stream in flight on every frontend ---------------------------------------------


def test_sigterm_drains_a_stream_in_flight_on_every_frontend(endless_home: Path) -> None:
    """HTTP (Ollama, OpenAI Chat/Completions/Responses, Anthropic) and gRPC in one serve, the bridge in
    its own process: SIGTERM to both while every stream runs; each stream ends by its token limit,
    new work is refused meanwhile, both processes exit 0."""
    server = start_grpc_server(endless_home, "--parallel", "8", "--ctx", "1024", "--keep-alive", "-1",
                               "--preload", "tiny", "--shutdown-timeout", "60")
    bridge = None
    try:
        bridge = start_bridge(endless_home, "--parallel", "1", "--ctx", "1024", "--keep-alive", "-1",
                              "--model", "tiny", "--shutdown-timeout", "60", env={"XDG_RUNTIME_DIR": str(short_dir())})
        assert server.http_url is not None
        target = Target(server.http_url, server.target, bridge.path)
        streams = [Stream(name, target, DRAIN_TOKENS) for name in STREAMS]
        for group in ([s for s in streams if s.frontend != "bridge"], [s for s in streams if s.frontend == "bridge"]):
            for s in group:  # the bridge's stream, alone on its engine, last: it runs fastest
                s.start()
            assert all(s.started.wait(30) for s in group), [s.frontend for s in group if not s.started.is_set()]
        in_flight = {s.frontend: s.chunks for s in streams if s.end is None}
        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        os.kill(bridge.proc.pid, signal.SIGTERM)
        assert wait_until(lambda: httpx.get(f"{server.http_url}/health", timeout=30).status_code == 503, timeout=10)
        refused = _generate(server.http_url, 2)
        assert refused.status_code == 503 and "retry-after" in refused.headers, refused.text
        for s in streams:
            s.join(60)
        exits = (server.proc.wait(60), bridge.proc.wait(60))
        drained = {s.frontend: (s.end, round((s.ended_at or signalled) - signalled, 2), s.chunks) for s in streams}
    finally:
        server.stop()
        if bridge is not None:
            bridge.stop()
    assert sorted(in_flight) == sorted(STREAMS), f"ended before SIGTERM: {set(STREAMS) - set(in_flight)}: {drained}"
    for name, (end, after, _) in drained.items():
        assert end == type(end)(True, LENGTH[name], DRAIN_TOKENS), (name, end)
        assert after > 0, name
    assert exits == (0, 0), ("".join(server.stderr)[-2000:], "".join(bridge.stderr)[-2000:])
    record("fault_sigterm_drain", tokens=DRAIN_TOKENS, chunks_at_sigterm=in_flight,
           seconds_after_sigterm={k: v[1] for k, v in drained.items()})
