"""Property-based requests generated from the app's own OpenAPI document: never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from serve_helpers import Server, start_server  # noqa: E402

pytestmark = pytest.mark.timeout(300)

_STORE_WRITES = {"/api/delete", "/api/copy", "/api/create", "/api/pull"}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[Server]:
    from llamarun.store import ModelStore

    home = tmp_path_factory.mktemp("fuzz-store")
    ModelStore(home).create("tiny", tiny_model_path)
    server = start_server(home, "--parallel", "2", "--ctx", "256", "--max-queue", "8", "--request-timeout", "20")
    try:
        yield server
    finally:
        server.stop()


def test_no_server_errors(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 18
    failures: list[str] = []
    seen: dict = {}
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # noqa: ANN001 - a schemathesis Case
            if isinstance(case.body, dict) and "model" in case.body and case.path not in _STORE_WRITES:
                case.body["model"] = "tiny"  # reach the model, not just the 404 for random names
            response = case.call(base_url=fuzz_server.url, timeout=60)
            seen[(case.path, response.status_code)] = seen.get((case.path, response.status_code), 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code} "
                                f"{response.text[:300]}")

        from hypothesis import given

        given(strategy)(check)()
    for path in ("/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions", "/api/embed"):
        assert seen.get((path, 200)), f"no generated request reached the model on {path}"
    assert not failures, "\n".join(failures)
    assert fuzz_server.metric("llamarun_http_requests_total", status="500") == 0
    assert fuzz_server.proc.poll() is None  # still serving
