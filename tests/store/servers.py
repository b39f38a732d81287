"""Small real HTTP servers on 127.0.0.1 (port 0) speaking the protocols the store pulls from.

- :class:`FileServer`: plain HTTP with Range, plus faults (drop mid-body, ignore Range, throttle,
  stall, endless chunked body, wrong bytes, redirects).
- :func:`hf_handler`: a Hugging Face style ``/<repo>/resolve/<rev>/<file>`` endpoint (302 to a CDN
  with ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``).
- :func:`ollama_handler`: an Ollama/Docker v2 registry (manifests and blobs by digest).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Faults:
    """Mutable per-server fault switches (tests flip them between pulls)."""

    drop_after: int | None = None  # close the connection after this many body bytes...
    drops_left: int = 0  # ...for this many responses
    ignore_range: bool = False
    throttle: float = 0.0  # seconds to sleep per 16 KiB chunk
    stall_after: int | None = None  # stop sending (but keep the connection) after this many bytes
    stall_release: threading.Event = field(default_factory=threading.Event)
    endless: bool = False  # chunked body that never ends
    content_length: int | None = None  # lie about the length
    gate: threading.Event | None = None  # hold every body until this is set (then send it whole)


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # dropped connections are on purpose
        pass


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1:0 calling ``handle(request_handler)`` for each request."""

    def __init__(self, handle: Callable[[Any, LocalServer], None]) -> None:
        self.handle = handle
        self.requests: list[Logged] = []
        self.faults = Faults()
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _any(self) -> None:
                with server.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append(Logged(self.command, self.path, headers))
                try:
                    server.handle(self, server)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_HEAD = _any

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gets(self, path_part: str = "") -> list[Logged]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and path_part in r.path]

    def close(self) -> None:
        self.faults.stall_release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_simple(h: Any, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def _drop(h: Any) -> None:
    h.wfile.flush()
    h.close_connection = True
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def send_file(h: Any, server: LocalServer, data: bytes, extra: dict[str, str] | None = None) -> None:
    """Serve ``data`` honouring Range (unless told not to) and the server's faults."""
    f = server.faults
    start, status = 0, 200
    match = re.match(r"^bytes=(\d+)-$", h.headers.get("Range", ""))
    if match and not f.ignore_range:
        start = int(match.group(1))
        if start >= len(data):
            send_simple(h, 416, headers={"Content-Range": f"bytes */{len(data)}"})
            return
        status = 206
    h.send_response(status)
    h.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    if status == 206:
        h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    if f.endless:
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        _send_endless(h)
        return
    h.send_header("Content-Length", str(f.content_length if f.content_length is not None else len(data) - start))
    h.end_headers()
    if h.command == "HEAD":
        return
    _send_body(h, server, data[start:])


def _send_body(h: Any, server: LocalServer, body: bytes) -> None:
    f = server.faults
    with server.lock:
        drop_after = f.drop_after if f.drops_left > 0 else None
        if drop_after is not None:
            f.drops_left -= 1
    if f.gate is not None:
        h.wfile.flush()
        f.gate.wait(30)
    sent = 0
    for i in range(0, len(body), 16384):
        chunk = body[i:i + 16384]
        if drop_after is not None and sent + len(chunk) > drop_after:
            h.wfile.write(chunk[: drop_after - sent])
            _drop(h)
            return
        if f.stall_after is not None and sent >= f.stall_after:
            h.wfile.flush()
            f.stall_release.wait(30)
            _drop(h)
            return
        h.wfile.write(chunk)
        sent += len(chunk)
        if f.throttle:
            h.wfile.flush()
            time.sleep(f.throttle)


def _send_endless(h: Any) -> None:
    chunk = b"\0" * 65536
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    _drop(h)


def file_handler(h: Any, server: LocalServer) -> None:
    """Serve ``server.files`` by path; ``server.redirects`` maps a path to a Location."""
    _serve_key(h, server, urlsplit(h.path).path if h.path.startswith("http") else h.path.split("?", 1)[0])


def proxy_handler(h: Any, server: LocalServer) -> None:
    """An HTTP proxy's view: ``h.path`` is an absolute URL; route by its host + path."""
    parts = urlsplit(h.path)
    _serve_key(h, server, f"{parts.hostname}{parts.path}")


def _serve_key(h: Any, server: LocalServer, key: str) -> None:
    """A redirect, a file or 404 for ``key`` of ``server.redirects`` / ``server.files``."""
    if key in server.redirects:
        send_simple(h, 302, headers={"Location": server.redirects[key]})
    elif key in server.files:
        send_file(h, server, server.files[key])
    else:
        send_simple(h, 404, b"not found")


@dataclass
class HfRepo:
    """What the HF-style endpoint knows: files by (repo, path) with their LFS sha256 and a commit."""

    cdn: LocalServer
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    lie_sha256: str | None = None
    lie_size: int | None = None


def hf_handler(repo: HfRepo) -> Callable[[Any, LocalServer], None]:
    def handle(h: Any, server: LocalServer) -> None:
        match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", h.path.split("?", 1)[0])
        data = repo.files.get((match.group(1), match.group(3))) if match else None
        if data is None:
            send_simple(h, 404, b"Entry not found", {"X-Error-Code": "EntryNotFound"})
            return
        sha = repo.lie_sha256 or hashlib.sha256(data).hexdigest()
        cdn_path = f"/cdn/{hashlib.sha256(data).hexdigest()}"
        repo.cdn.files[cdn_path] = data
        send_simple(h, 302, b"", {
            "Location": repo.cdn.url + cdn_path, "X-Repo-Commit": repo.commit, "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(repo.lie_size if repo.lie_size is not None else len(data)), "ETag": '"abc"',
        })
    return handle


@dataclass
class Registry:
    """An Ollama-style registry: manifests by (ns/model, tag) and blobs by hex digest."""

    manifests: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    redirect_blobs: bool = True

    def add_model(self, ns_model: str, tag: str, gguf: bytes, *, template: str | None = None,
                  license: str | None = None, digest: str | None = None, size: int | None = None) -> str:
        layers = []
        model_digest = digest or "sha256:" + hashlib.sha256(gguf).hexdigest()
        self.blobs[model_digest.removeprefix("sha256:")] = gguf
        layers.append({"mediaType": "application/vnd.ollama.image.model", "digest": model_digest,
                       "size": len(gguf) if size is None else size})
        for media, text in (("template", template), ("license", license)):
            if text is not None:
                data = text.encode()
                hexd = hashlib.sha256(data).hexdigest()
                self.blobs[hexd] = data
                layers.append({"mediaType": f"application/vnd.ollama.image.{media}", "digest": f"sha256:{hexd}",
                               "size": len(data)})
        config = b"{}"
        self.manifests[(ns_model, tag)] = {
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
            "layers": layers,
        }
        return model_digest


def ollama_handler(registry: Registry) -> Callable[[Any, LocalServer], None]:
    def handle(h: Any, server: LocalServer) -> None:
        path = h.path.split("?", 1)[0]
        m = re.match(r"^/v2/([^/]+/[^/]+)/manifests/([^/]+)$", path)
        if m and (m.group(1), m.group(2)) in registry.manifests:
            body = json.dumps(registry.manifests[(m.group(1), m.group(2))]).encode()
            send_simple(h, 200, body, {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
            return
        m = re.match(r"^/v2/[^/]+/[^/]+/blobs/sha256:([0-9a-f]{64})$", path)
        if m and m.group(1) in registry.blobs:
            if registry.redirect_blobs:
                send_simple(h, 307, b"", {"Location": f"/storage/{m.group(1)}"})
            else:
                send_file(h, server, registry.blobs[m.group(1)])
            return
        m = re.match(r"^/storage/([0-9a-f]{64})$", path)
        if m and m.group(1) in registry.blobs:
            send_file(h, server, registry.blobs[m.group(1)])
            return
        send_simple(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
    return handle
