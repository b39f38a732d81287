"""Runtime mechanics on the tiny model: queue bounds, preemption, deadlines, isolation, engine death."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llamarun.errors import EngineDeadError, GrammarError, OverloadedError
from llamarun.runtime import AsyncClient, GenerationRequest, HealthStatus, Runtime, RuntimeConfig, SyncClient
from llamarun.types import FinishReason, GenerationResult, SamplingParams
from waiting import wait_until

GREEDY = SamplingParams(temperature=0)


def req(prompt="hello world", n=16, **kw):
    return GenerationRequest(prompt=prompt, max_tokens=n, sampling=kw.pop("sampling", GREEDY), ignore_eos=True, **kw)


@pytest.fixture
def runtime(tiny_model_path):
    rt = Runtime(tiny_model_path, RuntimeConfig(n_ctx=512, n_slots=4, max_queue=4, n_threads=2))
    yield rt
    rt.close()


def test_generate_and_stream(runtime):
    client = SyncClient(runtime)
    result = client.generate(req(n=12))
    assert result.finish_reason == FinishReason.LENGTH and len(result.token_ids) == 12
    with client.stream(req(n=12)) as stream:
        text = "".join(c.text for c in stream)
    assert text == result.text == stream.result.text


def test_queue_full_is_overloaded_at_once_and_accepted_requests_complete(tiny_model_path):
    config = RuntimeConfig(n_ctx=512, n_slots=1, max_queue=2, n_threads=2)
    with Runtime(tiny_model_path, config) as rt:
        client = SyncClient(rt)
        streams = [client.stream(req(n=64)) for _ in range(3)]  # 1 running + 2 waiting
        with pytest.raises(OverloadedError) as info:  # raised at submission, not after waiting
            client.stream(req(n=4))
        assert info.value.retry_after >= 1
        results = [s.wait() for s in streams]
        assert [r.finish_reason for r in results] == [FinishReason.LENGTH] * 3


def test_priority_goes_first(tiny_model_path):
    config = RuntimeConfig(n_ctx=512, n_slots=1, max_queue=8, n_threads=2)
    with Runtime(tiny_model_path, config) as rt:
        order: list[str] = []
        lock = threading.Lock()
        started = threading.Event()

        def sink_for(name):
            def sink(event):
                started.set()
                if isinstance(event, GenerationResult):
                    with lock:
                        order.append(name)
            return sink

        rt.submit(req(n=32), sink_for("first"))
        assert started.wait(30)  # "first" holds the only slot
        rt.submit(req(n=4, priority=0), sink_for("low"))
        rt.submit(req(n=4, priority=5), sink_for("high"))
        wait_until(lambda: len(order) >= 3, timeout=60, interval=0.01)
        assert order == ["first", "high", "low"]


def test_deadline_finishes_with_partial_output(tiny_model_path):
    with Runtime(tiny_model_path, RuntimeConfig(n_ctx=16384, n_slots=1, n_threads=2)) as rt:
        result = SyncClient(rt).generate(req(n=100000, timeout=0.2))
    assert result.finish_reason == FinishReason.DEADLINE
    assert 0 < len(result.token_ids) < 100000


def test_cancel_frees_the_slot_and_others_continue(runtime):
    client = SyncClient(runtime)
    alone = client.generate(req("other prompt", n=40))
    victim = client.stream(req(n=100000))
    other = client.stream(req("other prompt", n=40))
    it = iter(victim)
    next(it)
    victim.cancel()
    assert victim.wait().finish_reason == FinishReason.CANCELLED
    assert other.wait().token_ids == alone.token_ids
    wait_until(lambda: not runtime.snapshot().running, timeout=10, interval=0.01)
    assert runtime.snapshot().running == 0


def test_preemption_when_kv_is_full_all_complete(tiny_model_path):
    config = RuntimeConfig(n_ctx=256, n_slots=4, kv_unified=True, kv_size=256, n_threads=2, max_queue=8)
    with Runtime(tiny_model_path, config) as rt:
        client = SyncClient(rt)
        streams = [client.stream(req(f"request number {i} says", n=120)) for i in range(4)]
        results = [s.wait() for s in streams]
        assert all(r.finish_reason == FinishReason.LENGTH and len(r.token_ids) == 120 for r in results)
        assert rt.snapshot().preemptions > 0


def test_invalid_grammar_fails_only_that_request(runtime):
    client = SyncClient(runtime)
    good = client.stream(req(n=30))
    with pytest.raises(GrammarError):
        client.generate(req(n=5, sampling=SamplingParams(grammar="root ::= (")))
    assert good.wait().finish_reason == FinishReason.LENGTH
    assert runtime.health().status == HealthStatus.OK


def test_engine_death_fails_pending_requests_and_health_says_so(tiny_model_path):
    rt = Runtime(tiny_model_path, RuntimeConfig(n_ctx=512, n_slots=2, n_threads=2))
    client = SyncClient(rt)
    stream = client.stream(req(n=100000))
    next(iter(stream))
    rt.call(lambda _model: rt._loop.ctx.close())  # inject a fatal fault into the engine itself
    with pytest.raises(EngineDeadError):
        stream.wait()
    assert rt.health().status == HealthStatus.ERROR
    with pytest.raises(EngineDeadError):
        client.generate(req(n=2))
    rt.close()


def test_engine_death_while_placing_a_request_fails_it_instead_of_hanging(tiny_model_path):
    """A fault in the step that takes a request off the queue (here: saving the slot's previous
    conversation) ends that request too, not only those the scheduler still lists."""
    rt = Runtime(tiny_model_path, RuntimeConfig(n_ctx=512, n_slots=1, n_threads=2))
    client = SyncClient(rt)
    client.generate(req("a first conversation long enough to be saved " * 4, n=4))

    def broken(*_args):
        raise AttributeError("seq_state_get is broken")

    rt.call_engine(lambda loop: setattr(loop.ctx, "seq_state_get", broken))
    failed: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(failed, lambda: client.generate(req("another prompt " * 8, n=4))))
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the request hung after the engine died"
    assert len(failed) == 1 and isinstance(failed[0], EngineDeadError), failed
    assert rt.health().status == HealthStatus.ERROR
    rt.close()


def _capture(into: list[BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the test looks at it
        into.append(exc)


def test_async_client_stream_and_cancel_on_close(runtime):
    async def main():
        client = AsyncClient(runtime)
        text = "".join([c.text async for c in client.stream(req(n=10))])
        result = await client.generate(req(n=10))
        assert text == result.text
        agen = client.stream(req(n=100000))
        await agen.__anext__()
        await agen.aclose()  # a client going away
        for _ in range(500):
            if runtime.snapshot().running == 0:
                break
            await asyncio.sleep(0.01)
        return runtime.snapshot()

    snap = asyncio.run(main())
    assert snap.running == 0
    assert snap.outcomes.get("cancelled", 0) >= 1


def test_context_overflow_is_typed_unless_truncation_is_asked(runtime):
    from llamarun.errors import ContextOverflowError

    long_prompt = list(range(10, 250)) * 3  # 720 tokens > n_ctx 512
    with pytest.raises(ContextOverflowError):
        SyncClient(runtime).generate(GenerationRequest(prompt=long_prompt, max_tokens=4, sampling=GREEDY))
    result = SyncClient(runtime).generate(
        GenerationRequest(prompt=long_prompt, max_tokens=4, sampling=GREEDY, truncate=True, n_keep=8))
    assert result.truncated and result.prompt_tokens < 512
    assert len(result.token_ids) <= 4


def test_an_ended_request_is_already_counted_when_its_end_arrives(runtime):
    """The outcome counter is updated before the end is delivered, so a client that saw its request
    finish always finds it in the metrics (the cause of test_full_queue_gives_503_with_retry_after's
    intermittent failures: /metrics was scraped between delivery and counting)."""
    seen: list[int] = []
    done = threading.Event()

    def sink(event):
        if isinstance(event, GenerationResult):
            seen.append(runtime.snapshot().outcomes.get("length", 0))
            done.set()

    for expected in (1, 2, 3):
        done.clear()
        runtime.submit(req(n=4), sink)
        assert done.wait(30)
        assert seen[-1] == expected, seen
