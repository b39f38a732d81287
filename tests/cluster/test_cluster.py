"""Two SmolLM2 replicas and one of the tiny model on a real local Ray Serve: the official clients,
routing by model, balancing, prefix routing, replica failure, overload, body limits and disconnects
(the `cluster` marker runs these alone)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from cluster_helpers import Cluster
from waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.smollm2, pytest.mark.timeout(600)]


def _openai(cluster: Cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_the_official_clients_work_through_the_ingress(cluster: Cluster) -> None:
    client = _openai(cluster)
    reply = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Say hi"}],
                                           max_tokens=8)
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Count to five"}], max_tokens=12, stream=True)
        if c.choices]
    assert len([p for p in pieces if p]) > 3  # streamed, token by token
    local = ollama.Client(host=cluster.url)
    assert local.generate(model="smollm2", prompt="Hi", options={"num_predict": 6}).response
    chunks = list(local.chat(model="smollm2", messages=[{"role": "user", "content": "Hi"}], stream=True,
                             options={"num_predict": 8}))
    assert chunks[-1].done and len(chunks) > 3
    assert [m.model for m in local.list().models] == ["smollm2", "tiny"]
    assert [m.id for m in client.models.list().data] == ["smollm2", "tiny"]


def test_each_model_is_served_by_its_own_deployment(cluster: Cluster) -> None:
    replicas = {p["replica"]: p["model"] for p in cluster.ps()}
    assert sorted(replicas.values()) == ["smollm2", "smollm2", "tiny"], replicas
    client = _openai(cluster)
    for model in ("tiny", "smollm2", "tiny:latest", "smollm2:latest"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, extra_body={"ignore_eos": True})
        assert raw.parse().usage.completion_tokens > 0
        assert replicas[raw.headers["x-llamarun-replica"]] == model.removesuffix(":latest"), (model, replicas)
        r = httpx.post(f"{cluster.url}/api/generate", timeout=120, json={
            "model": model, "prompt": "Hi", "stream": False, "options": {"num_predict": 4}})
        assert r.status_code == 200 and r.json()["done"], r.text
        assert replicas[r.headers["x-llamarun-replica"]] == model.removesuffix(":latest"), (model, replicas)
    tags = {m["name"]: m["digest"] for m in httpx.get(f"{cluster.url}/api/tags", timeout=30).json()["models"]}
    digests = {p["model"]: p["digest"].removeprefix("sha256:") for p in cluster.ps()}
    assert tags == digests and tags["tiny"] != tags["smollm2"]  # each deployment loaded its own blob
    health = httpx.get(f"{cluster.url}/health", timeout=30).json()
    assert health["status"] == "ok" and {m["name"]: m["replicas"] for m in health["models"]} == {"smollm2": 2, "tiny": 1}


def test_replicas_decode_at_normal_priority(cluster: Cluster) -> None:
    """Ray starts workers at niceness 15: a replica's decode threads would yield the CPU to the
    ingress, the proxy and the clients on the node (measured: a one-replica cluster at 0.6 of
    serve's tokens/s). Every thread of every replica runs at niceness 0."""
    for replica in cluster.ps():
        tasks = Path(f"/proc/{replica['pid']}/task")
        niceness = {int(t.name): os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in tasks.iterdir()}
        assert set(niceness.values()) == {0}, (replica["model"], niceness)


def test_unknown_models_and_store_changes_are_refused(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.url}/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=30)
    assert r.status_code == 404 and "smollm2" in r.json()["error"]["message"]
    r = httpx.post(f"{cluster.url}/api/generate", json={"model": "smollm2", "keep_alive": 0}, timeout=30)
    assert r.status_code == 400 and "keep_alive" in r.json()["error"]  # no request unloads a replica's model
    r = httpx.post(f"{cluster.url}/api/pull", json={"model": "smollm2"}, timeout=30)
    assert r.status_code == 400 and "spec" in r.json()["error"]
    r = httpx.post(f"{cluster.url}/api/copy", content=b"{}", timeout=30, headers={"Origin": "https://evil.example",
                                                                                   "Content-Type": "application/json"})
    assert r.status_code == 403  # the same CSRF rule as llamarun serve
    r = httpx.get(f"{cluster.url}/api/tags", headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code in (400, 403)  # DNS rebinding: the Host check holds at the ingress
    big = json.dumps({"model": "smollm2", "prompt": "x" * (17 << 20)}).encode()  # over the 16 MiB limit
    r = httpx.post(f"{cluster.url}/api/generate", content=big, timeout=60, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]  # through Ray's proxy too


def _chat(cluster: Cluster, content: str, tokens: int = 48) -> dict:
    r = httpx.post(f"{cluster.url}/v1/chat/completions", timeout=300, json={
        "model": "smollm2", "messages": [{"role": "user", "content": content}], "max_tokens": tokens,
        "ignore_eos": True})
    return {"status": r.status_code, "body": r.json()}


def test_eight_clients_are_spread_over_both_replicas(cluster: Cluster) -> None:
    before = cluster.metric_by_replica("llamarun_generated_tokens_total", model="smollm2")
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _chat(cluster, f"Tell me about the number {i}"), range(8)))
    assert all(r["status"] == 200 for r in results)

    def served() -> list[str]:  # the replicas whose generated-token count grew (metrics arrive a moment later)
        after = cluster.metric_by_replica("llamarun_generated_tokens_total", model="smollm2")
        return [replica for replica, value in after.items() if value > before.get(replica, 0)]

    wait_until(lambda: len(served()) >= 2, timeout=15)
    assert len(served()) == 2, (before, cluster.metric_by_replica("llamarun_generated_tokens_total", model="smollm2"))
    text = httpx.get(f"{cluster.url}/metrics", timeout=30).text
    for gauge in ("llamarun:num_requests_waiting", "llamarun:num_requests_running", "llamarun:kv_cache_usage_perc"):
        assert f"# TYPE {gauge} gauge" in text


def test_follow_up_turns_land_where_their_prefix_is_cached(cluster: Cluster) -> None:
    client = _openai(cluster)
    system = {"role": "system", "content": "You are a ship's captain who answers in one sentence."}

    def conversation(i: int) -> list[tuple[str, int, int]]:
        messages = [system, {"role": "user", "content": f"Passenger {i} asks: where are we sailing, and why? "
                                                        f"Tell me about the route of voyage number {i}."}]
        turns = []
        for turn in range(3):
            raw = client.chat.completions.with_raw_response.create(model="smollm2", messages=messages, max_tokens=16)
            reply = raw.parse()
            turns.append((raw.headers["x-llamarun-replica"], reply.usage.prompt_tokens,
                          reply.usage.prompt_tokens_details.cached_tokens))
            messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                         {"role": "user", "content": f"And then, on day {turn + 2}?"}]
        return turns

    with cf.ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(conversation, range(4)))
    assert len({replica for run in runs for replica, _, _ in run}) == 2, runs  # the load was spread
    for run in runs:
        assert len({replica for replica, _, _ in run}) == 1, runs  # each conversation stayed with its cache
        for (_, prompt, _), (_, _, cached) in zip(run, run[1:]):
            assert cached >= prompt, runs  # the previous turn's whole prompt was cached


def test_overload_answers_503_with_retry_after(cluster: Cluster) -> None:
    # 2 replicas x (4 slots + 4 waiting at the replica) + 4 queued in Ray = 20: of 40 at once, half
    # cannot be taken (each holds its slot for 160 tokens, so all arrive before any leaves, even on
    # a loaded host where the ingress takes seconds to pass them on)
    with cf.ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda i: _chat(cluster, f"Story {i}", 160), range(40)))
    codes = sorted(r["status"] for r in results)
    assert 503 in codes and 200 in codes, codes
    assert set(codes) <= {200, 503}


def test_a_disconnect_frees_the_slot_on_the_replica(cluster: Cluster) -> None:
    with httpx.stream("POST", f"{cluster.url}/api/generate", timeout=120, json={
            "model": "smollm2", "prompt": "Write a long story", "options": {"num_predict": 2000}}) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break
    assert wait_until(lambda: sum(p["running"] for p in cluster.ps()) == 0, timeout=15)


def test_a_killed_replica_fails_its_requests_and_is_replaced(cluster: Cluster) -> None:
    replicas = cluster.wait_replicas(2)

    def stream(i: int) -> str:  # 400 tokens whatever the model says (a story that ended early at its EOS
        try:                        # once left the victim idle by the time it was killed)
            with httpx.stream("POST", f"{cluster.url}/v1/completions", timeout=120, json={
                    "model": "smollm2", "prompt": f"Story {i}", "max_tokens": 400, "ignore_eos": True,
                    "stream": True}) as r:
                lines = list(r.iter_lines())
            return "error" if r.status_code >= 500 or any('"error"' in line for line in lines) else "ok"
        except httpx.HTTPError as exc:
            return f"error: {exc}"

    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream, i) for i in range(4)]
        assert wait_until(lambda: sum(p["running"] for p in cluster.ps()) >= 2, timeout=30)
        victim = next(p for p in cluster.ps() if p["running"] > 0)
        os.kill(victim["pid"], signal.SIGKILL)
        outcomes = [f.result(timeout=150) for f in futures]  # none hangs
    assert any(o.startswith("error") for o in outcomes), outcomes
    started = time.monotonic()
    cluster.wait_replicas(2, exclude_pids={victim["pid"]}, timeout=180)
    assert time.monotonic() - started < 180
    assert _chat(cluster, "Hello again", 8)["status"] == 200
    assert {p["pid"] for p in replicas} != {p["pid"] for p in cluster.wait_replicas(2)}
