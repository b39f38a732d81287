"""A pull never takes over a name it was not given, never follows a redirect to link-local or
metadata addresses, and concurrent pulls of one URL transfer once (issue 18 items 2, 10, 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamarun.errors import RedirectRefusedError
from llamarun.store import ModelStore

from .conftest import leftovers, sha
from .servers import LocalServer, proxy_handler

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LLAMARUN_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "llamarun", *argv], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120, check=False)


def _serve_helpers():
    """tests/http/serve_helpers.py (that folder is not a package): starts `llamarun serve` on port 0."""
    import importlib.util

    if "serve_helpers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("serve_helpers", ROOT / "tests" / "http" / "serve_helpers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["serve_helpers"] = module
        spec.loader.exec_module(module)
    return sys.modules["serve_helpers"]


# -- item 2: a derived name never replaces a model ------------------------------------------------------------


def test_cli_url_pull_refuses_to_replace_a_model_under_a_derived_name(
        tmp_path: Path, server: LocalServer, tiny_model_path: Path, gguf_variant) -> None:
    home = tmp_path / "home"
    assert cli(home, "create", "tiny", "--from", str(tiny_model_path), "-q").returncode == 0
    original = ModelStore(home).get("tiny")
    other = gguf_variant(7)
    server.files["/x/tiny.gguf"] = other
    proc = cli(home, "pull", f"{server.url}/x/tiny.gguf")
    assert proc.returncode == 1 and "already exists" in proc.stderr and "--name" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert server.gets() == []  # refused before any transfer
    kept = ModelStore(home).get("tiny")
    assert kept.digest == original.digest and kept.path.read_bytes() == tiny_model_path.read_bytes()
    assert leftovers(home) == []
    # named explicitly, it replaces; the old blob is kept while another name uses it, and that is said
    assert cli(home, "cp", "tiny", "tiny:keep").returncode == 0
    proc = cli(home, "pull", f"{server.url}/x/tiny.gguf", "--name", "tiny")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "replaced tiny:latest" in output and "kept" in output and "tiny:keep" in output
    assert ModelStore(home).get("tiny").digest == f"sha256:{sha(other)}"
    assert original.path.is_file() and ModelStore(home).get("tiny:keep").digest == original.digest
    # the last name of the old blob replaced: now the blob goes, and that is said too
    server.files["/y/third.gguf"] = gguf_variant(8)
    proc = cli(home, "pull", f"{server.url}/y/third.gguf", "--name", "tiny:keep")
    assert proc.returncode == 0 and "deleted" in proc.stdout + proc.stderr and not original.path.exists()


def test_same_source_may_update_its_own_name(store: ModelStore, server: LocalServer, gguf_variant) -> None:
    server.files["/m/model.gguf"] = gguf_variant(1)
    first = store.pull(f"{server.url}/m/model.gguf")
    server.files["/m/model.gguf"] = gguf_variant(2)
    second = store.pull(f"{server.url}/m/model.gguf")  # the name came from this very source: an update
    assert second.name == first.name and second.digest != first.digest and not first.path.exists()


def test_refused_after_transfer_when_the_name_appears_meanwhile(store: ModelStore, server: LocalServer,
                                                                gguf_variant, tiny_model_path: Path) -> None:
    """The check is repeated when the manifest is written: a name created during the download is kept."""
    gate = threading.Event()
    server.faults.gate = gate
    server.files["/z/late.gguf"] = gguf_variant(3)
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            store.pull(f"{server.url}/z/late.gguf")
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    worker = threading.Thread(target=pull)
    worker.start()
    deadline = time.monotonic() + 30
    while not server.gets("/z/late.gguf") and time.monotonic() < deadline:
        time.sleep(0.01)
    created = store.create("late", tiny_model_path)
    gate.set()
    worker.join(60)
    assert len(errors) == 1 and type(errors[0]).__name__ == "NameInUseError"
    assert store.get("late").digest == created.digest
    assert [p.name for p in (store.root / "blobs").iterdir()] == [created.path.name]  # the fetched blob went


def test_http_pull_refuses_a_derived_name_and_the_connection_stays_usable(
        tmp_path: Path, server: LocalServer, tiny_model_path: Path, gguf_variant) -> None:
    import ollama

    start_server = _serve_helpers().start_server

    home = tmp_path / "home"
    home.mkdir()
    original = ModelStore(home).create("smollm2", tiny_model_path)  # stands in for the real one
    server.files["/x/smollm2.gguf"] = gguf_variant(9)
    srv = start_server(home)
    try:
        client = ollama.Client(host=srv.url)
        with pytest.raises(ollama.ResponseError) as info:
            client.pull(f"{server.url}/x/smollm2.gguf", stream=False)
        assert info.value.status_code == 409 and "already exists" in info.value.error
        assert client.show("smollm2").details.family == "llama"  # same connection pool, still answers
        assert ModelStore(home).get("smollm2").digest == original.digest and original.path.is_file()
        with srv.client() as http:
            lines = http.post("/api/pull", json={"model": f"{server.url}/x/smollm2.gguf"}).text
            assert "already exists" in lines and http.get("/api/tags").status_code == 200
    finally:
        srv.stop()


# -- item 10: link-local and metadata redirects ---------------------------------------------------------------


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """Every non-loopback request goes to this recording proxy, so nothing can reach 169.254.x for real."""
    with LocalServer(proxy_handler) as srv:
        for key in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HTTP_PROXY", srv.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        yield srv


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://169.254.10.1/x.gguf",
    "http://[fe80::1]/x.gguf",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
])
def test_redirect_from_loopback_to_metadata_is_refused_before_connecting(
        store: ModelStore, root: Path, server: LocalServer, proxy: LocalServer, target: str) -> None:
    server.redirects["/m.gguf"] = target
    with pytest.raises(RedirectRefusedError, match="link-local or cloud metadata"):
        store.pull(f"{server.url}/m.gguf", name="m")
    assert len(server.gets("/m.gguf")) == 1  # the loopback URL itself was asked (not through the proxy)
    assert proxy.requests == []  # and nothing was sent towards the redirect's target
    assert not store.has("m") and leftovers(root) == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/", "http://[fe80::1]/x.gguf",
                                    "http://100.100.100.200/latest/meta-data/"])
def test_a_metadata_address_as_the_first_url_is_refused_before_connecting(
        store: ModelStore, root: Path, proxy: LocalServer, target: str) -> None:
    """`/api/pull {"model": "http://169.254.169.254/..."}` must not make the server send that request."""
    with pytest.raises(RedirectRefusedError, match="link-local or cloud metadata"):
        store.pull(target, name="m")
    assert proxy.requests == [] and not store.has("m") and leftovers(root) == []


def test_proxy_fixture_would_see_a_followed_redirect(store: ModelStore, server: LocalServer, proxy: LocalServer,
                                                     tiny_bytes: bytes) -> None:
    """Control for the test above: a public redirect target is followed, through the proxy."""
    proxy.files["example.com/m.gguf"] = tiny_bytes
    server.redirects["/m.gguf"] = "http://example.com/m.gguf"
    assert store.pull(f"{server.url}/m.gguf", name="m").digest == f"sha256:{sha(tiny_bytes)}"
    assert [r.path for r in proxy.requests] == ["http://example.com/m.gguf"]


# -- item 11: concurrent pulls of one URL without a digest ----------------------------------------------------


@pytest.mark.parametrize("names", [(None, None), ("one", "two")])
def test_concurrent_pulls_of_one_url_transfer_once(store: ModelStore, server: LocalServer, gguf_variant,
                                                   names: tuple[str | None, str | None]) -> None:
    data = gguf_variant(4)
    server.files["/c/shared.gguf"] = data
    gate = threading.Event()
    server.faults.gate = gate
    waiting = threading.Event()
    results: dict[int, object] = {}

    def pull(i: int) -> None:
        def progress(event) -> None:
            if event.status.startswith("waiting for another pull"):
                waiting.set()
        try:
            results[i] = store.pull(f"{server.url}/c/shared.gguf", name=names[i], progress=progress)
        except BaseException as exc:  # noqa: BLE001 - checked below
            results[i] = exc

    first = threading.Thread(target=pull, args=(0,))
    first.start()
    deadline = time.monotonic() + 30
    while not server.gets("/c/shared.gguf") and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=pull, args=(1,))
    second.start()
    assert waiting.wait(30)  # the second pull waits for the first one's transfer
    gate.set()
    first.join(60)
    second.join(60)
    digests = {getattr(r, "digest", r) for r in results.values()}
    assert digests == {f"sha256:{sha(data)}"}
    assert len(server.gets("/c/shared.gguf")) == 1
