"""Batching, cancellation, deadlines, a full queue and invalid requests over gRPC."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_helpers import GrpcServer, wait_until
from grpc_status import rpc_status

from llamarun.grpc.v1 import llamarun_pb2 as pb

pytestmark = pytest.mark.smollm2

LONG = 2000  # tokens: a generation that outlasts the test unless it is stopped


def _long(request_id: str = "", model: str = "smollm2") -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=request_id, model=model, text="Once upon a time", max_tokens=LONG,
                              sampling=pb.SamplingParams(ignore_eos=True))


def _busy(server: GrpcServer, model: str = "smollm2:latest") -> int:
    loads = server.stub().GetLoads(pb.GetLoadsRequest()).models
    return sum(m.busy_slots + m.queue_depth for m in loads if m.name == model)


def _free(server: GrpcServer) -> bool:
    return _busy(server) == 0


def _stream_tokens(stub, n: int, model: str) -> tuple[int, float]:
    started = time.monotonic()
    tokens = 0
    for r in stub.Generate(pb.GenerateRequest(model=model, text="The history of Rome", max_tokens=n,
                                              sampling=pb.SamplingParams(ignore_eos=True))):
        tokens += len(r.chunk.token_ids)
    return tokens, time.monotonic() - started


def test_eight_streams_are_batched(grpc_server: GrpcServer) -> None:
    """``mid``: a step reads its weights once whatever the batch (SmolLM2's quantized weights stay
    in cache: on a busy 2-core machine it is compute-bound, see bench_grpc.py; the tiny model is
    bound by messages per second)."""
    stub, n, model = grpc_server.stub(), 64, "mid"
    _stream_tokens(stub, 4, model)  # loaded and warm
    singles, aggregates, peak = [], [], [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _busy(grpc_server, "mid:latest"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):  # rounds of one stream then eight, back to back (this machine's speed drifts)
            tokens, seconds = _stream_tokens(stub, n, model)
            assert tokens == n
            singles.append(n / seconds)
            if not watcher.is_alive():
                watcher.start()
            started = time.monotonic()
            results = list(pool.map(lambda _: _stream_tokens(stub, n, model), range(8)))
            assert all(tokens == n for tokens, _ in results)
            aggregates.append(8 * n / (time.monotonic() - started))
    stop.set()
    watcher.join()
    ratios = [a / s for a, s in zip(aggregates, singles, strict=True)]
    print(f"8 streams / one stream, per round: {[f'{r:.2f}x' for r in ratios]}")
    assert peak[0] == 8, f"at most {peak[0]} of the 8 streams ran at once"
    # the best round's ratio; measured on 2 cores: 2.6x on an otherwise idle machine, 1.9-2.0x at a
    # load average of 20-28 from other work (a round's ratio then ranges down to 1.1x)
    assert max(ratios) > 1.5, f"8 streams: {aggregates} tok/s, one stream: {singles} tok/s"


def test_cancelling_a_stream_frees_its_slot(grpc_server: GrpcServer) -> None:
    call = grpc_server.stub().Generate(_long())
    next(call), next(call)
    assert _busy(grpc_server) == 1
    call.cancel()
    wait_until(lambda: _free(grpc_server), timeout=5)


def test_abort_frees_the_slot_and_ends_the_call_cancelled(grpc_server: GrpcServer) -> None:
    call = grpc_server.stub().Generate(_long("abort-me"))
    next(call)
    assert grpc_server.stub().Abort(pb.AbortRequest(request_id="abort-me")).aborted
    with pytest.raises(grpc.RpcError) as err:
        for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.CANCELLED
    wait_until(lambda: _free(grpc_server), timeout=5)
    assert not grpc_server.stub().Abort(pb.AbortRequest(request_id="abort-me")).aborted


def test_a_duplicate_request_id_in_flight_is_refused(grpc_server: GrpcServer) -> None:
    call = grpc_server.stub().Generate(_long("twice"))
    next(call)
    with pytest.raises(grpc.RpcError) as err:
        grpc_server.stub().Complete(_long("twice"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    call.cancel()
    wait_until(lambda: _free(grpc_server), timeout=5)


def test_the_client_deadline_is_the_request_deadline(grpc_server: GrpcServer) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        grpc_server.stub().Complete(_long(), timeout=1.0)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started < 3
    wait_until(lambda: _free(grpc_server), timeout=5)


def test_a_full_queue_is_resource_exhausted_with_retry_info(grpc_server: GrpcServer) -> None:
    stub = grpc_server.stub()
    stub.LoadModel(pb.LoadModelRequest(model="tiny"))
    request = pb.GenerateRequest(model="tiny", text="hello", max_tokens=300, sampling=pb.SamplingParams(ignore_eos=True))
    futures = [stub.Complete.future(request, timeout=60) for _ in range(20)]  # 8 slots, 4 waiting
    codes, delays = [], []
    for f in futures:
        try:
            assert f.result().complete.usage.completion_tokens == 300
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            status = rpc_status.from_call(exc)
            for detail in status.details if status else ():
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    delays.append(info.retry_delay.seconds)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    exhausted = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert exhausted >= 1 and codes.count(grpc.StatusCode.OK) >= 8, codes
    assert len(delays) == exhausted and min(delays) >= 1


def _field_of(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    return ""


DEEP = "root ::= " + "(" * 60_000 + '"a"' + ")" * 60_000

INVALID = [
    (pb.GenerateRequest(model="tiny", text="x", max_tokens=-5), grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
    (pb.GenerateRequest(model="no-such-model", text="x"), grpc.StatusCode.NOT_FOUND, ""),
    (pb.GenerateRequest(model="", text="x"), grpc.StatusCode.INVALID_ARGUMENT, "model"),
    (pb.GenerateRequest(model="tiny"), grpc.StatusCode.INVALID_ARGUMENT, "input"),
    (pb.GenerateRequest(model="tiny", text=""), grpc.StatusCode.INVALID_ARGUMENT, "input"),
    (pb.GenerateRequest(model="tiny", text="x", json_schema="{not json"), grpc.StatusCode.INVALID_ARGUMENT,
     "json_schema"),
    (pb.GenerateRequest(model="tiny", text="x", json_schema='{"type": "no-such-type"}'),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (pb.GenerateRequest(model="tiny", text="x", grammar=DEEP), grpc.StatusCode.INVALID_ARGUMENT, ""),
    (pb.GenerateRequest(model="tiny", text="x", sampling=pb.SamplingParams(temperature=-1)),
     grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature"),
    (pb.GenerateRequest(model="tiny", text="x", sampling=pb.SamplingParams(top_p=float("nan"))),
     grpc.StatusCode.INVALID_ARGUMENT, "sampling"),
    (pb.GenerateRequest(model="tiny", token_ids=pb.TokenIds(ids=[10**7])), grpc.StatusCode.INVALID_ARGUMENT,
     "token_ids"),
    (pb.GenerateRequest(model="tiny", text="x " * 3000), grpc.StatusCode.FAILED_PRECONDITION, "prompt"),
]


@pytest.mark.parametrize("rpc", ["Complete", "Generate"])
def test_invalid_requests_are_refused_and_the_server_keeps_serving(grpc_server: GrpcServer, rpc: str) -> None:
    stub = grpc_server.stub()
    for request, code, field in INVALID:
        with pytest.raises(grpc.RpcError) as err:
            answer = getattr(stub, rpc)(request)
            if rpc == "Generate":
                list(answer)
        assert err.value.code() == code, (request.model, request.WhichOneof("input"), err.value.details())
        if field:
            assert _field_of(err.value) == field
    health = health_pb2_grpc.HealthStub(grpc_server.channel())
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    assert stub.Complete(pb.GenerateRequest(model="tiny", text="hi", max_tokens=2)).complete.usage.completion_tokens


def test_concurrent_cancels_leave_nothing_behind(grpc_server: GrpcServer) -> None:
    stub = grpc_server.stub()
    calls = [stub.Generate(_long(model="tiny")) for _ in range(6)]
    for c in calls:
        next(c)
    threads = [threading.Thread(target=c.cancel) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: _busy(grpc_server, "tiny:latest") == 0, timeout=5)
    assert stub.GetLoads(pb.GetLoadsRequest()).in_flight == 0  # no Generate/Complete left in flight
