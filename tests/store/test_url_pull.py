"""https:// (here http:// on 127.0.0.1) pulls: verified, resumable, retried, bounded, redirect-checked."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llamarun.errors import DigestMismatchError, DownloadError, GGUFFormatError, RedirectRefusedError
from llamarun.store import ModelStore, PullProgress, TransferPolicy

from waiting import wait_until

from .conftest import FAST, leftovers, sha
from .servers import LocalServer, file_handler, proxy_handler


def test_pull_url_with_sha256(store: ModelStore, root: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/models/Tiny-Llama.Q8_0.gguf"] = tiny_bytes
    events: list[PullProgress] = []
    model = store.pull(f"{server.url}/models/Tiny-Llama.Q8_0.gguf", sha256=sha(tiny_bytes), progress=events.append)
    assert model.name == "tiny-llama.q8_0:latest" and model.digest == f"sha256:{sha(tiny_bytes)}"
    assert model.path == root / "blobs" / f"sha256-{sha(tiny_bytes)}" and model.path.read_bytes() == tiny_bytes
    assert model.manifest["verified_by"] == "--sha256" and model.facts["architecture"] == "llama"
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-2:] == ["writing manifest", "success"]
    assert "verifying sha256 digest" in statuses
    last = [e for e in events if e.total][-1]
    assert last.completed == last.total == len(tiny_bytes) and last.status == f"pulling {sha(tiny_bytes)[:12]}"
    assert last.to_json() == {"status": last.status, "digest": model.digest, "total": len(tiny_bytes),
                              "completed": len(tiny_bytes)}
    assert leftovers(root) == []
    # pulling again is a no-op: no new request
    before = len(server.gets())
    assert store.pull(f"{server.url}/models/Tiny-Llama.Q8_0.gguf", sha256=sha(tiny_bytes)) == store.get(model.name)
    assert len(server.gets()) == before


def test_pull_url_without_sha256_records_the_digest(store: ModelStore, server: LocalServer,
                                                    tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    model = store.pull(f"{server.url}/x.gguf", name="mine:v1")
    assert model.name == "mine:v1" and model.digest == f"sha256:{sha(tiny_bytes)}"
    assert model.manifest["verified"] is False and model.source == f"{server.url}/x.gguf"


def test_wrong_bytes_leave_nothing(store: ModelStore, root: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    with pytest.raises(DigestMismatchError, match="deleted"):
        store.pull(f"{server.url}/x.gguf", sha256="0" * 64)
    assert list((root / "blobs").iterdir()) == []
    assert not (root / "manifests").exists() or list((root / "manifests").iterdir()) == []
    assert leftovers(root) == []


def test_not_a_gguf_is_refused(store: ModelStore, root: Path, server: LocalServer) -> None:
    server.files["/page.gguf"] = b"<html>login required</html>" * 100
    with pytest.raises(GGUFFormatError, match="nothing was stored"):
        store.pull(f"{server.url}/page.gguf")
    assert not any((root / "blobs").iterdir()) and leftovers(root) == []


def test_http_404_is_a_download_error_without_retries(store: ModelStore, server: LocalServer) -> None:
    with pytest.raises(DownloadError, match="404"):
        store.pull(f"{server.url}/missing.gguf")
    assert len(server.gets()) == 1


def test_dropped_connection_resumes_with_range(store: ModelStore, root: Path, server: LocalServer,
                                               tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.drop_after, server.faults.drops_left = 100_000, 2
    model = store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert model.path.read_bytes() == tiny_bytes
    gets = server.gets()
    assert [g.headers.get("range") for g in gets] == [None, "bytes=100000-", "bytes=200000-"]
    assert gets[1].headers.get("if-range")  # the validator (ETag) guards the resume
    assert leftovers(root) == []


def test_server_ignoring_range_restarts_cleanly(store: ModelStore, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.drop_after, server.faults.drops_left, server.faults.ignore_range = 150_000, 1, True
    model = store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert model.path.read_bytes() == tiny_bytes
    assert [g.headers.get("range") for g in server.gets()] == [None, "bytes=150000-"]


def test_retries_give_up_with_a_clear_error_and_keep_the_partial(root: Path, server: LocalServer,
                                                                 tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.drop_after, server.faults.drops_left = 0, 100
    store = ModelStore(root, policy=TransferPolicy(retries=2, backoff=0.01, backoff_max=0.02))
    with pytest.raises(DownloadError, match="after 3 attempts"):  # 1 + 2 retries
        store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert len(server.gets()) == 3


def test_endless_body_is_bounded(root: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.endless = True
    store = ModelStore(root, policy=TransferPolicy(max_bytes=2_000_000, backoff=0.01))
    with pytest.raises(DownloadError, match="more than the 2000000 bytes"):
        store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert leftovers(root) == [] and len(server.gets()) == 1


def test_body_shorter_than_its_content_length_resumes_and_verifies(root: Path, server: LocalServer,
                                                                   tiny_bytes: bytes) -> None:
    """A server promising more bytes than it sends: the stalled read times out, the resume learns
    (416, ``bytes */size``) that every byte is there, and the SHA-256 decides."""
    server.files["/x.gguf"] = tiny_bytes
    server.faults.content_length = len(tiny_bytes) + 10
    store = ModelStore(root, policy=TransferPolicy(backoff=0.01, read_timeout=0.5))
    model = store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert model.path.read_bytes() == tiny_bytes
    assert [g.headers.get("range") for g in server.gets()] == [None, f"bytes={len(tiny_bytes)}-"]


def test_a_server_that_keeps_failing_after_progress_is_given_up(root: Path, server: LocalServer,
                                                               tiny_bytes: bytes) -> None:
    """Re-fetching bytes already held is not progress, so retries stay bounded."""
    server.files["/x.gguf"] = tiny_bytes
    server.faults.drop_after, server.faults.drops_left, server.faults.ignore_range = 300_000, 100, True
    store = ModelStore(root, policy=TransferPolicy(retries=2, backoff=0.01, backoff_max=0.02))
    with pytest.raises(DownloadError, match="attempts"):
        store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
    assert len(server.gets()) == 3  # the first attempt made progress, the next two did not


def test_two_concurrent_pulls_do_one_transfer(root: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.throttle = 0.01
    url = f"{server.url}/x.gguf"
    results, errors = [], []
    events: list[PullProgress] = []

    def pull(name: str) -> None:
        try:
            results.append(ModelStore(root, policy=FAST).pull(url, sha256=sha(tiny_bytes), name=name,
                                                              progress=events.append))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 2
    assert len(server.gets("/x.gguf")) == 1
    assert {r.path for r in results} == {root / "blobs" / f"sha256-{sha(tiny_bytes)}"}
    assert any(e.status.startswith("waiting for another pull") for e in events)


STALL = 12 * 16384  # the server stalls at a chunk boundary

_CHILD = """
import sys
from llamarun.store import ModelStore
ModelStore(sys.argv[1]).pull(sys.argv[2], sha256=sys.argv[3])
"""


def test_killed_process_resumes(root: Path, server: LocalServer, tiny_bytes: bytes) -> None:
    server.files["/x.gguf"] = tiny_bytes
    server.faults.stall_after = STALL
    url = f"{server.url}/x.gguf"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), url, sha(tiny_bytes)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = root / "partial" / f"sha256-{sha(tiny_bytes)}.partial"
    try:
        wait_until(lambda: partial.exists() and partial.stat().st_size >= STALL, interval=0.02)
        assert partial.stat().st_size == STALL
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    server.faults.stall_after = None
    model = ModelStore(root, policy=FAST).pull(url, sha256=sha(tiny_bytes))
    assert model.path.read_bytes() == tiny_bytes
    assert [g.headers.get("range") for g in server.gets()] == [None, f"bytes={STALL}-"]
    assert leftovers(root) == []


def test_redirect_to_loopback_from_a_public_url_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                           tiny_bytes: bytes) -> None:
    """End to end through an HTTP proxy: the URL names a public host the proxy serves; the server
    redirects to 127.0.0.1, which the policy refuses before connecting there."""
    with LocalServer(proxy_handler) as proxy, LocalServer(file_handler) as internal:
        internal.files["/secret.gguf"] = tiny_bytes
        proxy.files["models.example.test/real.gguf"] = tiny_bytes
        proxy.redirects["models.example.test/evil.gguf"] = f"{internal.url}/secret.gguf"
        proxy.redirects["models.example.test/moved.gguf"] = "http://models.example.test/real.gguf"
        for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        store = ModelStore(root, policy=FAST)
        with pytest.raises(RedirectRefusedError, match="127.0.0.1"):
            store.pull("http://models.example.test/evil.gguf", sha256=sha(tiny_bytes))
        assert internal.requests == []
        model = store.pull("http://models.example.test/moved.gguf")  # same-site redirect: followed
        assert model.path.read_bytes() == tiny_bytes
        assert [g.path for g in proxy.gets()] == ["http://models.example.test/evil.gguf",
                                                  "http://models.example.test/moved.gguf",
                                                  "http://models.example.test/real.gguf"]


def test_redirect_between_local_servers_is_allowed_when_the_url_was_local(store: ModelStore, server: LocalServer,
                                                                         tiny_bytes: bytes) -> None:
    with LocalServer(file_handler) as other:
        other.files["/real.gguf"] = tiny_bytes
        server.redirects["/x.gguf"] = f"{other.url}/real.gguf"
        model = store.pull(f"{server.url}/x.gguf", sha256=sha(tiny_bytes))
        assert model.path.read_bytes() == tiny_bytes
