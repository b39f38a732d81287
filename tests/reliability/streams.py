"""One long stream per frontend, run in a thread, and how that protocol says a stream ended normally.

Every stream asks for ``tokens`` tokens at temperature 0 from a model that cannot end early
(:func:`silence_end_of_generation`), so a stream that ends normally ends by length with exactly that
many tokens, in the protocol's own words: Ollama ``done_reason: length``, OpenAI ``finish_reason:
length``, Responses ``response.incomplete`` (``max_output_tokens``), Anthropic ``stop_reason:
max_tokens`` then ``message_stop``, gRPC ``FINISH_REASON_LENGTH``, the bridge ``done`` with
``finish_reason: length``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from bridge_helpers import Client
from llamarun.grpc.v1 import llamarun_pb2 as pb
from llamarun.grpc.v1 import llamarun_pb2_grpc as pb_grpc

__all__ = ["LENGTH", "STREAMS", "End", "Stream", "Target", "silence_end_of_generation"]


def silence_end_of_generation(path: Path) -> Path:
    """Zero the output rows of the tiny model's end-of-generation tokens (<|endoftext|>, <|im_end|>):
    their logit is 0 while the largest of the other 260 random logits is positive, so greedy
    decoding never ends a turn before its token limit."""
    import gguf

    reader = gguf.GGUFReader(path, "r+")
    (output,) = [t for t in reader.tensors if t.name == "output.weight"]
    output.data[[0, 2], :] = 0.0
    output.data.flush()
    return path


@dataclass(frozen=True)
class End:
    """How a stream ended: ``normal`` when by the protocol's own last message, with its reason and
    token count."""

    normal: bool
    reason: str
    tokens: int | None


@dataclass(frozen=True)
class Target:
    http: str  # the serve's base URL
    grpc: str  # its gRPC address
    bridge: Path  # the bridge's socket


Chunk = Callable[[], None]


def _lines(url: str, route: str, body: dict[str, Any]) -> Iterator[str]:
    headers = {"anthropic-version": "2023-06-01"}
    with httpx.stream("POST", url + route, json=body, headers=headers, timeout=120) as r:
        r.raise_for_status()
        yield from (line for line in r.iter_lines() if line)


def _sse(url: str, route: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(event name, data) of each server-sent event; ``[DONE]`` as ("done", None)."""
    name = ""
    for line in _lines(url, route, body):
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data = line.removeprefix("data:").strip()
            yield ("done", None) if data == "[DONE]" else (name, json.loads(data))


def ollama_generate(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "prompt": "Once upon a time", "raw": True, "options": {"num_predict": n, "temperature": 0}}
    return _ollama(t, "/api/generate", body, chunk)


def ollama_chat(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story"}],
            "options": {"num_predict": n, "temperature": 0}}
    return _ollama(t, "/api/chat", body, chunk)


def _ollama(t: Target, route: str, body: dict[str, Any], chunk: Chunk) -> End:
    for line in _lines(t.http, route, body):
        reply = json.loads(line)
        if "error" in reply:
            return End(False, reply["error"], None)
        if reply.get("done"):
            return End(True, reply["done_reason"], reply["eval_count"])
        chunk()
    return End(False, "closed without done", None)


def openai_chat(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": n,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    return _openai(t, "/v1/chat/completions", body, chunk)


def openai_completions(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": n, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    return _openai(t, "/v1/completions", body, chunk)


def _openai(t: Target, route: str, body: dict[str, Any], chunk: Chunk) -> End:
    reason, tokens = None, None
    for name, data in _sse(t.http, route, body):
        if name == "done":
            return End(reason is not None, reason or "no finish_reason", tokens)
        if "error" in data:
            return End(False, json.dumps(data["error"]), None)
        for choice in data.get("choices", []):
            reason = choice.get("finish_reason") or reason
        if data.get("usage"):
            tokens = data["usage"]["completion_tokens"]
        chunk()
    return End(False, "closed without [DONE]", None)


def openai_responses(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "input": "Tell me a story", "max_output_tokens": n, "temperature": 0, "stream": True,
            "store": False}
    for name, data in _sse(t.http, "/v1/responses", body):
        if name in ("response.completed", "response.incomplete"):
            response = data["response"]
            reason = (response.get("incomplete_details") or {}).get("reason", response["status"])
            return End(True, reason, response["usage"]["output_tokens"])
        if name in ("error", "response.failed"):
            return End(False, json.dumps(data), None)
        chunk()
    return End(False, "closed without response.completed", None)


def anthropic(t: Target, n: int, chunk: Chunk) -> End:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": n,
            "temperature": 0, "stream": True}
    reason, tokens = None, None
    for name, data in _sse(t.http, "/v1/messages", body):
        if name == "message_delta":
            reason, tokens = data["delta"]["stop_reason"], data["usage"]["output_tokens"]
        elif name == "message_stop":
            return End(reason is not None, reason or "no stop_reason", tokens)
        elif name == "error":
            return End(False, json.dumps(data), None)
        chunk()
    return End(False, "closed without message_stop", None)


def grpc_generate(t: Target, n: int, chunk: Chunk) -> End:
    with grpc.insecure_channel(t.grpc) as channel:
        request = pb.GenerateRequest(model="tiny", text="Once upon a time", max_tokens=n,
                                     sampling=pb.SamplingParams(temperature=0))
        try:
            for reply in pb_grpc.LlamarunStub(channel).Generate(request, timeout=120):
                kind = reply.WhichOneof("response")
                if kind == "complete":
                    done = reply.complete
                    return End(True, pb.FinishReason.Name(done.finish_reason), done.usage.completion_tokens)
                if kind == "error":
                    return End(False, f"{reply.error.code}: {reply.error.message}", None)
                chunk()
        except grpc.RpcError as exc:
            return End(False, f"{exc.code().name}: {exc.details()}", None)
    return End(False, "closed without complete", None)


def bridge_stream(t: Target, n: int, chunk: Chunk) -> End:
    with Client(t.bridge) as client:
        for line in ("LOAD tiny", f"SET max_tokens {n}", "SET temperature 0"):
            client.ok(line)
        client.send("STREAM Once upon a time")
        while (reply := client.read()) is not None:
            if reply["status"] != "ok":
                return End(False, f"{reply['code']}: {reply['message']}", None)
            if reply["message"] == "done":
                return End(True, reply["data"]["finish_reason"], reply["data"]["completion_tokens"])
            chunk()
    return End(False, "closed without done", None)


STREAMS: dict[str, Callable[[Target, int, Chunk], End]] = {
    "ollama_generate": ollama_generate, "ollama_chat": ollama_chat, "openai_chat": openai_chat,
    "openai_completions": openai_completions, "openai_responses": openai_responses, "anthropic": anthropic,
    "grpc": grpc_generate, "bridge": bridge_stream,
}
LENGTH = {"ollama_generate": "length", "ollama_chat": "length", "openai_chat": "length",
          "openai_completions": "length", "openai_responses": "max_output_tokens", "anthropic": "max_tokens",
          "grpc": "FINISH_REASON_LENGTH", "bridge": "length"}  # each protocol's "the token limit was reached"


class Stream(threading.Thread):
    """Runs one frontend's stream; ``started`` once its first chunk came, ``end`` and ``ended_at`` after."""

    def __init__(self, name: str, target: Target, tokens: int) -> None:
        super().__init__(daemon=True, name=f"stream-{name}")
        self.frontend, self.target, self.tokens = name, target, tokens
        self.started = threading.Event()
        self.chunks = 0
        self.end: End | None = None
        self.ended_at: float | None = None

    def _chunk(self) -> None:
        self.chunks += 1
        self.started.set()

    def run(self) -> None:
        try:
            self.end = STREAMS[self.frontend](self.target, self.tokens, self._chunk)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.end = End(False, f"{type(exc).__name__}: {exc}", None)
        finally:
            self.ended_at = time.monotonic()
            self.started.set()
