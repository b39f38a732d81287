"""What one request may ask of a real `llamarun serve`: load options bounded, no reload of a
shared model unless the operator allows it, keep_alive range-checked, a reaper that survives.

Issue 18 items 3-5: ``num_ctx 262144`` loaded ~23 GB, ``num_thread 1000`` gave the server
1,004 threads for every later request, ``keep_alive 1e30`` killed the model reaper.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from serve_helpers import ROOT, Server, start_server
from waiting import wait_until

pytestmark = pytest.mark.timeout(300)

_MIB = 1 << 20


def _rss(server: Server) -> int:
    return psutil.Process(server.proc.pid).memory_info().rss


def _threads(server: Server) -> int:
    return psutil.Process(server.proc.pid).num_threads()


def _ps(client: httpx.Client) -> dict[str, int]:
    return {m["model"]: m["context_length"] for m in client.get("/api/ps").json()["models"]}


def _generate(client: httpx.Client, model: str, **body: object) -> httpx.Response:
    options = {"num_predict": 2, **body.pop("options", {})}  # type: ignore[dict-item]
    return client.post("/api/generate", json={"model": model, "prompt": "Hello", "stream": False,
                                              "options": options, **body})


@pytest.fixture(scope="module")
def strict(model_home: Path) -> Iterator[Server]:
    """The defaults: requests may not reload models (4 slots of 2048 tokens, 1 thread)."""
    server = start_server(model_home, "--parallel", "4", "--ctx", "2048")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reloading(model_home: Path) -> Iterator[Server]:
    """An operator who lets requests reload models, with a num_ctx ceiling far above memory."""
    server = start_server(model_home, "--parallel", "4", "--allow-request-reload",
                          "--max-request-ctx", str(1 << 20))
    try:
        yield server
    finally:
        server.stop()


def test_huge_num_ctx_is_refused_before_loading(strict: Server) -> None:
    with strict.client() as client:
        rss = _rss(strict)
        reply = _generate(client, "smollm2", options={"num_ctx": 262144})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert "options.num_ctx" in error and "262144" in error and "8192" in error  # ceiling: trained context
        assert "smollm2:latest" not in _ps(client)
        assert _rss(strict) - rss < 200 * _MIB
        ok = _generate(client, "smollm2", options={"num_ctx": 1024})  # within the loaded 2048: served
        assert ok.status_code == 200 and ok.json()["done"]
        assert _ps(client)["smollm2:latest"] == 2048
        bigger = _generate(client, "smollm2", options={"num_ctx": 4096})  # needs a reload: not allowed
        assert bigger.status_code == 400
        assert "options.num_ctx" in bigger.json()["error"] and "allow-request-reload" in bigger.json()["error"]
        assert _ps(client)["smollm2:latest"] == 2048
        assert _rss(strict) - rss < 400 * _MIB  # one SmolLM2 at 4 x 2048, nothing more


def test_a_load_that_does_not_fit_is_refused_with_the_sizes(reloading: Server) -> None:
    with reloading.client() as client:
        rss = _rss(reloading)
        reply = _generate(client, "smollm2", options={"num_ctx": 1 << 20})  # 4 slots: about 90 GiB
        assert reply.status_code == 507, reply.text
        error = reply.json()["error"]
        assert "1048576 x 4" in error and "GiB" in error and "usable" in error
        assert "smollm2:latest" not in _ps(client)
        assert _rss(reloading) - rss < 200 * _MIB
        ok = _generate(client, "tiny", options={"num_ctx": 1024})  # reload allowed: loaded as asked
        assert ok.status_code == 200 and _ps(client)["tiny:latest"] == 1024


def test_num_thread_is_bounded_by_the_cores(strict: Server, reloading: Server) -> None:
    for server in (strict, reloading):
        with server.client() as client:
            assert _generate(client, "tiny").status_code == 200
            threads = _threads(server)
            reply = _generate(client, "tiny", options={"num_thread": 1000})
            assert reply.status_code == 400, reply.text
            assert "options.num_thread" in reply.json()["error"] and "usable cores" in reply.json()["error"]
            later = _generate(client, "tiny")  # a later request without options: unaffected
            assert later.status_code == 200 and later.json()["eval_count"] == 2
            assert _threads(server) <= threads + 4
            assert _threads(server) < 200  # not the 1,004 of issue 18


def test_num_thread_that_differs_needs_the_operator(strict: Server, reloading: Server) -> None:
    with strict.client() as client:  # the strict server loads with 1 thread (--threads 1)
        assert _generate(client, "tiny").status_code == 200
        reply = _generate(client, "tiny", options={"num_thread": 2})
        assert reply.status_code == 400 and "options.num_thread" in reply.json()["error"]
        assert _generate(client, "tiny", options={"num_thread": 1}).status_code == 200  # what is loaded: fine
    with reloading.client() as client:
        assert _generate(client, "tiny", options={"num_thread": 2}).status_code == 200


def test_huge_keep_alive_is_refused_and_models_still_unload(strict: Server) -> None:
    with strict.client() as client:
        for path, body in (("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                     "max_tokens": 2}),
                           ("/api/generate", {"prompt": "Hi", "stream": False, "options": {"num_predict": 2}})):
            reply = client.post(path, json={"model": "tiny", "keep_alive": 1e30, **body})
            assert reply.status_code == 400, reply.text
            assert "keep_alive" in reply.text
        forever = _generate(client, "tiny", keep_alive=-1e30)  # any negative value: keep loaded
        assert forever.status_code == 200
        assert "tiny:latest" in _ps(client)
        reply = client.post("/v1/chat/completions", json={
            "model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "keep_alive": 0.5})
        assert reply.status_code == 200
        wait_until(lambda: "tiny:latest" not in _ps(client), timeout=60, interval=0.1)
        assert "tiny:latest" not in _ps(client)  # the reaper unloaded it


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_refuses_a_huge_keep_alive(tmp_path: Path, how: str) -> None:
    config = tmp_path / "config.toml"
    config.touch()
    env = {**os.environ, "LLAMARUN_HOME": str(tmp_path), "LLAMARUN_CONFIG": str(config)}
    args = [sys.executable, "-m", "llamarun", "serve", "--port", "0"]
    if how == "flag":
        args += ["--keep-alive", "1e20"]
    else:
        env["LLAMARUN_KEEP_ALIVE"] = "1e20"
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "keep_alive" in done.stderr and "1e+09" in done.stderr and "listening" not in done.stdout
