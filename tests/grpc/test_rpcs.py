"""Every RPC of llamarun.v1 through a real grpcio client against `llamarun serve --grpc-port`."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_helpers import GrpcServer
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from llamarun.grpc.v1 import llamarun_pb2 as pb

pytestmark = pytest.mark.smollm2


def test_health_and_reflection(grpc_server: GrpcServer) -> None:
    channel = grpc_server.channel()
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "llamarun.v1.Llamarun"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in answer.list_services_response.service}
    assert {"llamarun.v1.Llamarun", "grpc.health.v1.Health"} <= names


def test_models_info_load_unload_and_loads(grpc_server: GrpcServer) -> None:
    stub = grpc_server.stub()
    names = {m.name for m in stub.ListModels(pb.ListModelsRequest()).models}
    assert {"tiny:latest", "smollm2:latest"} <= names
    info = stub.ModelInfo(pb.ModelInfoRequest(model="smollm2"))
    assert info.name == "smollm2:latest" and info.architecture == "llama" and info.context_length >= 2048
    assert "completion" in info.capabilities and info.chat_template
    loaded = stub.LoadModel(pb.LoadModelRequest(model="tiny", keep_alive_s=-1))
    assert loaded.name == "tiny:latest" and loaded.slots == 8 and loaded.context_length == 1024
    [tiny] = [m for m in stub.GetLoads(pb.GetLoadsRequest()).models if m.name == "tiny:latest"]
    assert tiny.state == "ready" and tiny.slots == 8 and tiny.busy_slots == 0 and tiny.free_slots == 8
    assert tiny.queue_depth == 0 and tiny.kv_cells_total >= 1024 and 0 <= tiny.kv_usage <= 1
    assert stub.ModelInfo(pb.ModelInfoRequest(model="tiny")).loaded_context == 1024
    assert stub.UnloadModel(pb.UnloadModelRequest(model="tiny")).unloaded
    assert "tiny:latest" not in {m.name for m in stub.GetLoads(pb.GetLoadsRequest()).models}
    assert not stub.UnloadModel(pb.UnloadModelRequest(model="tiny")).unloaded


def test_tokenize_detokenize_round_trip(grpc_server: GrpcServer) -> None:
    stub = grpc_server.stub()
    ids = list(stub.Tokenize(pb.TokenizeRequest(model="smollm2", text="Hello, world!", add_special=False)).token_ids)
    assert len(ids) >= 3
    assert stub.Detokenize(pb.DetokenizeRequest(model="smollm2", token_ids=ids)).text == "Hello, world!"
    special = stub.Tokenize(pb.TokenizeRequest(model="smollm2", text="<|im_start|>", parse_special=True))
    assert len(special.token_ids) == 1


def test_embed(grpc_server: GrpcServer) -> None:
    out = grpc_server.stub().Embed(pb.EmbedRequest(model="tiny", inputs=["hello", "world"], dimensions=16))
    assert len(out.embeddings) == 2 and out.prompt_tokens > 0
    for e in out.embeddings:
        assert len(e.values) == 16 and abs(float(np.linalg.norm(e.values)) - 1.0) < 1e-3


def test_generate_streams_chunks_then_complete(grpc_server: GrpcServer) -> None:
    request = pb.GenerateRequest(request_id="stream-1", model="tiny", text="hello", max_tokens=12, logprobs=True,
                                 top_logprobs=2, sampling=pb.SamplingParams(ignore_eos=True, seed=7))
    responses = list(grpc_server.stub().Generate(request))
    assert all(r.request_id == "stream-1" for r in responses)
    chunks = [r.chunk for r in responses if r.WhichOneof("response") == "chunk"]
    assert [r.WhichOneof("response") for r in responses][-1] == "complete"
    done = responses[-1].complete
    assert done.finish_reason == pb.FINISH_REASON_LENGTH and done.usage.completion_tokens == 12
    assert done.usage.prompt_tokens > 0 and done.timings.total_s > 0
    assert "".join(c.text for c in chunks) == done.content
    logprobs = [lp for c in chunks for lp in c.logprobs]
    assert len(logprobs) == 12 and all(len(lp.top) == 2 and lp.logprob <= 0 for lp in logprobs)
    ids = [t for c in chunks for t in c.token_ids]
    again = grpc_server.stub().Complete(pb.GenerateRequest(
        model="tiny", token_ids=pb.TokenIds(ids=ids[:4]), max_tokens=3, sampling=pb.SamplingParams(ignore_eos=True)))
    assert len(again.token_ids) == 3 and again.complete.usage.prompt_tokens == 4


def test_complete_chat_with_a_json_schema(grpc_server: GrpcServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}
    answer = grpc_server.stub().Complete(pb.GenerateRequest(
        model="smollm2", chat=pb.ChatInput(messages=[
            pb.ChatMessage(role="user", content="What is the capital of France? Answer in JSON.")]),
        json_schema=json.dumps(schema), max_tokens=40, sampling=pb.SamplingParams(temperature=0)))
    assert answer.complete.finish_reason == pb.FINISH_REASON_STOP
    assert "paris" in json.loads(answer.complete.content)["city"].lower()


def test_chat_tools_are_parsed(grpc_server: GrpcServer) -> None:
    tool = pb.Tool(name="get_weather", description="Weather of a city",
                   parameters_json_schema=json.dumps({"type": "object", "properties": {"city": {"type": "string"}},
                                                      "required": ["city"]}))
    answer = grpc_server.stub().Complete(pb.GenerateRequest(
        model="smollm2", chat=pb.ChatInput(tools=[tool], messages=[
            pb.ChatMessage(role="user", content="What is the weather in Paris? Use the tool.")]),
        max_tokens=60, sampling=pb.SamplingParams(temperature=0)))
    done = answer.complete
    assert done.tool_calls or done.content  # a parsed call or plain text, never an error
    for call in done.tool_calls:
        assert call.name == "get_weather" and isinstance(json.loads(call.arguments_json), dict)


def test_abort_of_an_unknown_request(grpc_server: GrpcServer) -> None:
    assert not grpc_server.stub().Abort(pb.AbortRequest(request_id="never-started")).aborted
    with pytest.raises(grpc.RpcError) as err:
        grpc_server.stub().Abort(pb.AbortRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
