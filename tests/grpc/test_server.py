"""The gRPC server alone (--no-http) on a non-loopback bind: the token, message limits, the drain;
and the committed generated code matches the proto."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_helpers import ROOT, GrpcServer, start_grpc_server, wait_until

from llamarun.grpc.v1 import llamarun_pb2 as pb

KEY = "grpc-test-key-0123"
AUTH = (("authorization", f"Bearer {KEY}"),)
LIMIT = 64 << 10


@pytest.fixture(scope="module")
def alone(grpc_home: Path) -> Iterator[GrpcServer]:
    """gRPC only, on 0.0.0.0 with a key, small messages, 20 s to drain."""
    server = start_grpc_server(grpc_home, "--no-http", "--host", "0.0.0.0", "--api-key", KEY, "--parallel", "2",
                               "--ctx", "512", "--keep-alive", "-1", "--grpc-max-message-bytes", str(LIMIT),
                               "--shutdown-timeout", "20")
    try:
        yield server
    finally:
        server.stop()


def _health(server: GrpcServer) -> int:
    return health_pb2_grpc.HealthStub(server.channel()).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_no_http_server_is_started(alone: GrpcServer) -> None:
    assert alone.http_url is None


def test_calls_without_the_token_are_refused(alone: GrpcServer) -> None:
    stub = alone.stub()
    for metadata in ((), (("authorization", "Bearer wrong-key-000"),), (("authorization", KEY),)):
        with pytest.raises(grpc.RpcError) as err:
            stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(pb.GenerateRequest(model="tiny", text="hi", max_tokens=2)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _health(alone) == health_pb2.HealthCheckResponse.SERVING  # probes carry no token
    assert {m.name for m in stub.ListModels(pb.ListModelsRequest(), metadata=AUTH).models} >= {"tiny:latest"}


def test_oversized_messages_are_refused(alone: GrpcServer) -> None:
    stub = alone.stub()
    with pytest.raises(grpc.RpcError) as err:
        stub.Complete(pb.GenerateRequest(model="tiny", text="x" * (2 * LIMIT), max_tokens=1), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as err:  # an answer over the limit is refused too, not sent
        stub.Embed(pb.EmbedRequest(model="tiny", inputs=["hello"] * 400), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Complete(pb.GenerateRequest(model="tiny", text="hi", max_tokens=2), metadata=AUTH).complete


def test_sigterm_drains_health_not_serving_while_streams_finish(alone: GrpcServer) -> None:
    """Last in this module: the server exits."""
    stub = alone.stub()
    stream = stub.Generate(pb.GenerateRequest(model="smollm2", text="Once upon a time", max_tokens=48,
                                              sampling=pb.SamplingParams(ignore_eos=True)), metadata=AUTH)
    first = next(stream)
    assert first.WhichOneof("response") == "chunk"
    alone.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: _health(alone) == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=5)
    with pytest.raises(grpc.RpcError) as err:
        stub.Complete(pb.GenerateRequest(model="tiny", text="hi", max_tokens=2), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    rest = list(stream)
    assert rest[-1].WhichOneof("response") == "complete"
    assert rest[-1].complete.usage.completion_tokens == 48
    assert alone.proc.wait(30) == 0


def test_non_loopback_bind_without_a_key_is_refused(grpc_home: Path) -> None:
    with pytest.raises(RuntimeError, match="needs an API key"):
        start_grpc_server(grpc_home, "--no-http", "--host", "0.0.0.0")


def test_no_http_needs_a_grpc_port(grpc_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "llamarun", "serve", "--no-http"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, "LLAMARUN_HOME": str(grpc_home)})
    assert proc.returncode != 0 and "--grpc-port" in proc.stderr


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """`make proto` output is committed: regenerate it and compare byte for byte."""
    from grpc_tools import protoc

    args = ["protoc", "-Illamarun/grpc/v1=proto/llamarun/v1", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", "proto/llamarun/v1/llamarun.proto"]
    started = time.monotonic()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert protoc.main(args) == 0
    finally:
        os.chdir(cwd)
    fresh, committed = tmp_path / "llamarun" / "grpc" / "v1", ROOT / "src" / "llamarun" / "grpc" / "v1"
    names = ["llamarun_pb2.py", "llamarun_pb2.pyi", "llamarun_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, f"stale generated code {mismatch + errors}: run `make proto`"
    assert time.monotonic() - started < 30


def test_tls(grpc_home: Path, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                           "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True, timeout=60, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr[-200:]!r}")
    server = start_grpc_server(grpc_home, "--no-http", "--grpc-tls-cert", str(cert), "--grpc-tls-key", str(key))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(server.target, credentials) as channel:
            models = server.stub(channel).ListModels(pb.ListModelsRequest(), timeout=10).models
            assert "tiny:latest" in {m.name for m in models}
        with grpc.insecure_channel(server.target) as plain, pytest.raises(grpc.RpcError) as err:
            server.stub(plain).ListModels(pb.ListModelsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0


def test_beside_http_one_manager_and_one_drain(grpc_home: Path) -> None:
    """gRPC and HTTP share the models; SIGTERM drains both (health NOT_SERVING, the stream finishes)."""
    import httpx

    server = start_grpc_server(grpc_home, "--parallel", "2", "--ctx", "512")
    try:
        stub = server.stub()
        stub.LoadModel(pb.LoadModelRequest(model="tiny"))
        assert "tiny:latest" in {m["name"] for m in httpx.get(f"{server.http_url}/api/ps", timeout=10).json()["models"]}
        stream = stub.Generate(pb.GenerateRequest(model="smollm2", text="Once upon a time", max_tokens=40,
                                                  sampling=pb.SamplingParams(ignore_eos=True)))
        next(stream)
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=5)
        assert list(stream)[-1].complete.usage.completion_tokens == 40
        assert server.proc.wait(30) == 0
    finally:
        server.stop()


def test_health_is_not_serving_while_the_preloaded_model_loads(grpc_home: Path) -> None:
    server = start_grpc_server(grpc_home, "--no-http", "--preload", "smollm2", "--parallel", "1", "--ctx", "256")
    try:
        assert _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING  # SmolLM2 takes about 1 s to load
        wait_until(lambda: _health(server) == health_pb2.HealthCheckResponse.SERVING, timeout=60)
        assert "smollm2:latest" in {m.name for m in server.stub().GetLoads(pb.GetLoadsRequest()).models}
    finally:
        assert server.stop() == 0
