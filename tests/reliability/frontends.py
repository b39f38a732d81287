"""One adapter per frontend: writes a hostile case's slots into that protocol and sorts the answer.

Each adapter's ``send(case)`` returns an :class:`Outcome` (``answered``, ``refused`` or
``server_error``, with what the server said) or None when the protocol has no place for what the
case attacks (Anthropic has no grammar field, gRPC no chat template); ``normal()`` sends an
ordinary small request and returns True when it is answered.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from hostile import Hostile
from llamarun.grpc.v1 import llamarun_pb2 as pb

__all__ = ["ADAPTERS", "BridgeFrontend", "GrpcFrontend", "HttpFrontend", "Outcome", "check_case"]

_SERVER_BRIDGE_CODES = frozenset({"internal", "model_load_failed", "decode_failed", "closed", "store_error",
                                  "context_creation_failed"})
_SERVER_GRPC_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS,
                                grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED})
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Outcome:
    kind: str  # answered | refused | server_error
    detail: str


def _num(value: float) -> bytes:
    """A number as JSON text (NaN and Infinity as Python's json writes them: the server must cope)."""
    return json.dumps(value).encode()


def _join(parts: dict[str, bytes]) -> bytes:
    """A JSON object from already-encoded values (so raw, hostile JSON can be spliced in)."""
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in parts.items()) + b"}"


def _http_outcome(response: httpx.Response) -> Outcome:
    detail = f"{response.status_code} {response.text[:300]}"
    if response.status_code < 300:
        return Outcome("answered", detail)
    if 400 <= response.status_code < 500:
        try:
            clear = "error" in response.json() or "detail" in response.json()
        except ValueError:
            clear = False
        return Outcome("refused" if clear else "server_error", detail if clear else f"not a JSON error: {detail}")
    return Outcome("server_error", detail)


def _common(case: Hostile, *, tokens_key: str) -> dict[str, bytes]:
    parts = {"model": json.dumps(case.model).encode(), tokens_key: _num(case.max_tokens)}
    if case.temperature is not None:
        parts["temperature"] = _num(case.temperature)
    return parts


def ollama_body(case: Hostile, model: str | None = None) -> bytes | None:
    if case.grammar is not None:
        return None  # Ollama's API has no grammar field (format takes a schema)
    options = {"num_predict": _num(case.max_tokens)}
    if case.temperature is not None:
        options["temperature"] = _num(case.temperature)
    parts = {"model": json.dumps(model or case.model).encode(), "prompt": case.prompt_json(),
             "stream": b"false", "raw": b"true" if model is None else b"false", "options": _join(options)}
    if case.schema is not None:
        parts["format"] = case.schema.encode()
    return _join(parts)


def chat_body(case: Hostile) -> bytes:
    parts = _common(case, tokens_key="max_tokens")
    parts["messages"] = b'[{"role":"user","content":' + case.prompt_json() + b"}]"
    if case.grammar is not None:
        parts["grammar"] = json.dumps(case.grammar).encode()
    if case.schema is not None:
        parts["response_format"] = b'{"type":"json_schema","json_schema":{"name":"x","schema":' + case.schema.encode() + b"}}"
    return _join(parts)


def completions_body(case: Hostile) -> bytes:
    parts = _common(case, tokens_key="max_tokens")
    parts["prompt"] = case.prompt_json()
    if case.grammar is not None:
        parts["grammar"] = json.dumps(case.grammar).encode()
    if case.schema is not None:
        parts["json_schema"] = case.schema.encode()
    return _join(parts)


def responses_body(case: Hostile) -> bytes | None:
    if case.grammar is not None:
        return None  # the Responses API constrains output by schema only
    parts = _common(case, tokens_key="max_output_tokens")
    parts["input"] = case.prompt_json()
    parts["store"] = b"false"
    if case.schema is not None:
        parts["text"] = b'{"format":{"type":"json_schema","name":"x","schema":' + case.schema.encode() + b"}}"
    return _join(parts)


def anthropic_body(case: Hostile) -> bytes | None:
    if case.grammar is not None or case.schema is not None:
        return None  # the Messages API has no grammar or schema field
    parts = _common(case, tokens_key="max_tokens")
    parts["messages"] = b'[{"role":"user","content":' + case.prompt_json() + b"}]"
    return _join(parts)


class HttpFrontend:
    """One HTTP API: ``route`` and the function writing a case as its body."""

    def __init__(self, name: str, route: str, body: Any, url: str) -> None:
        self.name, self.route, self.body = name, route, body
        self.client = httpx.Client(base_url=url, timeout=120, headers={"anthropic-version": "2023-06-01"})

    def post(self, route: str, content: bytes) -> httpx.Response:
        return self.client.post(route, content=content, headers={"content-type": "application/json"})

    def send(self, case: Hostile) -> Outcome | None:
        if case.template is not None or case.digest is not None:
            return self._ollama_extra(case) if self.name == "ollama" else None
        content = self.body(case)
        return None if content is None else _http_outcome(self.post(self.route, content))

    def _ollama_extra(self, case: Hostile) -> Outcome:
        if case.digest is not None:
            digest = case.digest.replace("/", "%2F")
            return _http_outcome(self.client.post(f"/api/blobs/{digest}", content=b"x" * 64,
                                                  headers={"content-type": "application/octet-stream"}))
        created = self.post("/api/create", json.dumps({"model": f"evil-{case.id}", "from": "tiny",
                                                       "template": case.template, "stream": False}).encode())
        if created.status_code != 200:
            return _http_outcome(created)
        return _http_outcome(self.post("/api/generate", ollama_body(case, model=f"evil-{case.id}") or b""))

    def normal(self) -> bool:
        ok = Hostile("normal", "", max_tokens=2)
        return self.client.get("/health").status_code == 200 and self.send(ok).kind == "answered"  # type: ignore[union-attr]

    def close(self) -> None:
        self.client.close()


def _wire_text(text: str | bytes) -> bytes:
    """Field 3 (``text``) of GenerateRequest as raw protobuf bytes: text no protobuf encoder writes."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    length, out = len(raw), bytearray(b"\x1a")
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + raw


class GrpcFrontend:
    name = "grpc"

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        self.complete = self.channel.unary_unary("/llamarun.v1.Llamarun/Complete", request_serializer=None,
                                                 response_deserializer=pb.CompleteResponse.FromString)

    def request(self, case: Hostile) -> bytes | None:
        if case.template is not None or case.digest is not None or case.text_json is not None:
            return None  # no chat template or blob fields; messages are typed, not JSON
        req = pb.GenerateRequest(model=case.model, max_tokens=int(min(max(case.max_tokens, _INT32[0]), _INT32[1])))
        if case.temperature is not None:
            req.sampling.temperature = case.temperature if not math.isfinite(case.temperature) or \
                abs(case.temperature) < 3e38 else math.inf
        if case.grammar is not None:
            req.grammar = case.grammar
        if case.schema is not None:
            req.json_schema = case.schema
        return req.SerializeToString() + _wire_text(case.text)

    def send(self, case: Hostile) -> Outcome | None:
        wire = self.request(case)
        if wire is None:
            return None
        try:
            reply = self.complete(wire, timeout=120)
        except grpc.RpcError as exc:
            kind = "server_error" if exc.code() in _SERVER_GRPC_CODES else "refused"
            return Outcome(kind, f"{exc.code().name} {exc.details()[:300]}")
        return Outcome("answered", str(reply)[:300])

    def normal(self) -> bool:
        return self.send(Hostile("normal", "", max_tokens=2)).kind == "answered"  # type: ignore[union-attr]

    def close(self) -> None:
        self.channel.close()


class BridgeFrontend:
    name = "bridge"

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self, case: Hostile) -> list[bytes] | None:
        if case.template is not None or case.digest is not None:
            return None  # the bridge takes no template and no blobs
        out = [f"LOAD {case.model}".encode(), f"SET max_tokens {json.dumps(case.max_tokens)}".encode()]
        if case.temperature is not None:
            out.append(f"SET temperature {json.dumps(case.temperature)}".encode())
        if case.grammar is not None:
            out.append(b"SET grammar " + json.dumps(case.grammar).encode())
        if case.schema is not None:
            out.append(b"SET json_schema " + case.schema.encode())
        if case.text_json is not None:
            out.append(b"CHAT " + case.prompt_json())
        else:
            out.append(b"INFER " + (case.text if isinstance(case.text, bytes) else case.prompt_json()))
        return out

    def send(self, case: Hostile) -> Outcome | None:
        lines = self.lines(case)
        if lines is None:
            return None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(str(self.path))
            replies = sock.makefile("rb")
            sender = threading.Thread(target=_send_quietly, args=(sock, b"".join(line + b"\n" for line in lines)),
                                      daemon=True)
            sender.start()
            for _ in lines:
                raw = replies.readline()
                if not raw:
                    return Outcome("server_error", "connection closed without an error reply")
                reply = json.loads(raw)
                if reply["status"] != "ok":
                    kind = "server_error" if reply["code"] in _SERVER_BRIDGE_CODES else "refused"
                    return Outcome(kind, json.dumps(reply)[:300])
            sender.join(30)
            return Outcome("answered", json.dumps(reply)[:300])

    def normal(self) -> bool:
        return self.send(Hostile("normal", "", max_tokens=2)).kind == "answered"  # type: ignore[union-attr]

    def close(self) -> None:
        pass


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the bridge closed first (an overlong line)


ADAPTERS = {
    "ollama": ("/api/generate", ollama_body),
    "openai_chat": ("/v1/chat/completions", chat_body),
    "openai_completions": ("/v1/completions", completions_body),
    "openai_responses": ("/v1/responses", responses_body),
    "anthropic": ("/v1/messages", anthropic_body),
}


def check_case(adapter: Any, label: str, case: Hostile) -> None:
    """Send ``case``: a refused case gets the protocol's client error, no case a server error, and
    the frontend answers a normal request after it (a case the protocol has no field for is skipped)."""
    import pytest

    outcome = adapter.send(case)
    if outcome is None:
        pytest.skip(f"{label} has no field for {case.id}")
    assert outcome.kind != "server_error", f"{label} {case.id}: {outcome.detail}"
    if case.refused:
        assert outcome.kind == "refused", f"{label} accepted {case.id}: {outcome.detail}"
    assert adapter.normal(), f"{label} does not answer a normal request after {case.id}"
