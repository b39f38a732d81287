"""Many clients at once: all complete; a full queue answers 503 with Retry-After, never 500 or a reset."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve_helpers import Server, start_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def busy_server(model_home: Path) -> Iterator[Server]:
    """The tiny model with 2 slots and room for 2 waiting requests."""
    server = start_server(model_home, "--parallel", "2", "--max-queue", "2", "--ctx", "2048", "--keep-alive", "-1")
    try:
        yield server
    finally:
        server.stop()


async def _stream(client: httpx.AsyncClient, max_tokens: int) -> tuple[int, dict[str, str], list[dict]]:
    body = {"model": "tiny", "prompt": "hello", "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
            "temperature": 0.7, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, dict(response.headers), [response.json()]
        events = []
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
        return 200, dict(response.headers), events


async def _many(url: str, n: int, max_tokens: int) -> list[tuple[int, dict[str, str], list[dict]] | BaseException]:
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(_stream(client, max_tokens) for _ in range(n)), return_exceptions=True)


def test_eight_streaming_clients_complete(smol_server: Server) -> None:
    results = asyncio.run(_many(smol_server.url, 8, 48))
    assert all(not isinstance(r, BaseException) for r in results), results
    for status, _, events in results:  # type: ignore[misc]
        assert status == 200
        text_events = [e for e in events if e["choices"]]
        assert text_events[-1]["choices"][0]["finish_reason"] == "length"
        assert events[-1]["usage"]["completion_tokens"] == 48


def test_full_queue_gives_503_with_retry_after(busy_server: Server) -> None:
    results = asyncio.run(_many(busy_server.url, 16, 1500))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"connection errors: {errors}"
    statuses = [r[0] for r in results]  # type: ignore[index]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 1 and statuses.count(200) >= 4, statuses
    for status, headers, events in results:  # type: ignore[misc]
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            assert events[0]["error"]["type"] == "overloaded_error"
        else:
            assert events[-1]["usage"]["completion_tokens"] == 1500  # every accepted request completes
    assert busy_server.metric("llamarun_http_requests_total", status="500") == 0
    assert busy_server.metric("llamarun_http_requests_total", route="/v1/completions", status="503") >= 1
    assert busy_server.metric("llamarun_http_request_duration_seconds_count", route="/v1/completions") == 16
    assert busy_server.metric("llamarun_requests_finished_total", model="tiny:latest", outcome="length") >= 4


def test_ollama_api_also_gives_503(busy_server: Server) -> None:
    async def one(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/api/generate", json={"model": "tiny", "prompt": "x", "raw": True, "stream": False,
                                                        "options": {"num_predict": 1500, "ignore_eos": True}})

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=busy_server.url, timeout=120,
                                     limits=httpx.Limits(max_connections=20)) as client:
            return await asyncio.gather(*(one(client) for _ in range(12)))

    responses = asyncio.run(run())
    busy = [r for r in responses if r.status_code == 503]
    assert busy and all("error" in r.json() and int(r.headers["retry-after"]) >= 1 for r in busy)
    assert all(r.json()["eval_count"] == 1500 for r in responses if r.status_code == 200)
    assert {r.status_code for r in responses} <= {200, 503}


def test_health_and_metrics_show_slot_use(smol_server: Server) -> None:
    httpx.post(f"{smol_server.url}/api/generate", timeout=60,
               json={"model": "tiny", "prompt": "x", "raw": True, "stream": False, "options": {"num_predict": 1}})
    health = smol_server.health()
    assert health["status"] == "ok"
    tiny = next(m for m in health["models"] if m["name"] == "tiny:latest")
    assert tiny["slots"] == 4 and tiny["n_ctx"] == 2048 and tiny["running"] == 0 and tiny["status"] == "ok"
    assert smol_server.metric("llamarun_slots", model="tiny:latest") == 4
    assert smol_server.metric("llamarun_kv_cells_total", model="tiny:latest") == 4 * 2048
    assert smol_server.metric("llamarun_models_loaded") >= 1
    assert smol_server.metric("llamarun_http_requests_in_flight") >= 1  # the scrape itself
