"""Fixtures: one `llamarun serve` with HTTP and gRPC and one `llamarun bridge` over a store with the
tiny model, and an adapter per frontend (frontends.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helpers in ("grpc", "bridge", "http"):  # their helper modules (pytest adds them too when it collects them)
    if str(TESTS / helpers) not in sys.path:
        sys.path.append(str(TESTS / helpers))

from bridge_helpers import Bridge, short_dir, start_bridge  # noqa: E402
from grpc_helpers import GrpcServer, start_grpc_server  # noqa: E402

from frontends import ADAPTERS, BridgeFrontend, GrpcFrontend, HttpFrontend  # noqa: E402

FRONTENDS = (*ADAPTERS, "grpc", "bridge")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def reliability_home(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("reliability-store")
    ModelStore(home).create("tiny", tiny_model_path)
    return home


@pytest.fixture(scope="session")
def hostile_server(reliability_home: Path) -> Iterator[GrpcServer]:
    """HTTP and gRPC in one process: 2 slots of 512 tokens, the tiny model kept loaded."""
    server = start_grpc_server(reliability_home, "--parallel", "2", "--ctx", "512", "--keep-alive", "-1",
                               "--preload", "tiny")
    try:
        yield server
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-3000:]


@pytest.fixture(scope="session")
def hostile_bridge(reliability_home: Path) -> Iterator[Bridge]:
    bridge = start_bridge(reliability_home, "--parallel", "2", "--ctx", "512", "--keep-alive", "-1",
                          env={"XDG_RUNTIME_DIR": str(short_dir())})
    try:
        yield bridge
    finally:
        assert bridge.stop() == 0, "".join(bridge.stderr)[-3000:]


@pytest.fixture(scope="session")
def frontends(hostile_server: GrpcServer, hostile_bridge: Bridge) -> Iterator[dict]:
    assert hostile_server.http_url is not None
    made: dict = {name: HttpFrontend(name, route, body, hostile_server.http_url)
                  for name, (route, body) in ADAPTERS.items()}
    made["grpc"] = GrpcFrontend(hostile_server.target)
    made["bridge"] = BridgeFrontend(hostile_bridge.path)
    yield made
    for frontend in made.values():
        frontend.close()
