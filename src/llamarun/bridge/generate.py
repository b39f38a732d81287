"""The generating commands: INFER, STREAM, CHAT, CHATSTREAM and EMBED, as serving-layer turns.

A prompt (INFER, STREAM) is a prompt turn (the chat template around the
``system`` setting and the prompt; ``SET raw true`` sends it as it is); CHAT and
CHATSTREAM are chat turns over a JSON array of messages. The connection's
settings are the turn's options; the serving layer batches, limits and cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidParameterError, RequestCancelledError
from ..serving import Event, Turn, TurnRequest, embed_texts, start_chat, start_prompt
from ..types import GenerationResult
from .connection import Connection, Handler
from .protocol import json_argument, ok_reply, text_argument

__all__ = ["GENERATION_COMMANDS"]


def _model(conn: Connection) -> str:
    if conn.model is None:
        raise InvalidParameterError("no model: send LOAD <name> first (MODELS lists them)", field="model")
    return conn.model


def _request(conn: Connection, *, stream: bool, prompt: str = "",
             messages: Sequence[dict[str, Any]] = ()) -> TurnRequest:
    s = conn.settings
    return TurnRequest(_model(conn), messages=messages, prompt=prompt, system=s.system, raw=s.raw,
                       options=s.options(), format=s.json_schema, grammar=s.grammar, stream=stream)


def _messages(conn: Connection, arg: str) -> list[dict[str, Any]]:
    """CHAT's argument: a JSON array of messages, or text as one user message."""
    if arg.lstrip().startswith("["):
        messages = json_argument(arg, "messages")
        if not all(isinstance(m, dict) for m in messages):
            raise InvalidParameterError("messages: a JSON array of objects with role and content",
                                        field="messages")
    else:
        messages = [{"role": "user", "content": text_argument(arg, "messages")}]
    system = conn.settings.system
    if system and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def _counts(result: GenerationResult) -> dict[str, Any]:
    return {"finish_reason": result.finish_reason.value, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens, "cached_tokens": result.cached_tokens}


def _message(output: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": output.content}
    if output.thinking:
        message["thinking"] = output.thinking
    if output.tool_calls:
        message["tool_calls"] = [c.to_ollama() for c in output.tool_calls]
    return message


async def _whole(conn: Connection, turn: Turn, *, chat: bool) -> bool:
    async with turn:
        conn.watch(turn)
        try:
            (collected,) = await turn.collect()
        finally:
            conn.watch(None)
    result, plan = collected.result, turn.plan.chat
    data = _counts(result)
    if chat:
        data["message"] = _message(plan.parse(result.text))
    else:
        data["text"] = plan.parse(result.text).content if plan is not None else result.text
    await conn.send(ok_reply("done", data))
    return True


async def _streamed(conn: Connection, turn: Turn, *, chat: bool) -> bool:
    async with turn:
        conn.watch(turn)
        try:
            firsts = await turn.first_events(check=False)
            await _relay(conn, turn, firsts, chat=chat)
        finally:
            conn.watch(None)
    return True


async def _relay(conn: Connection, turn: Turn, firsts: list[Event], *, chat: bool) -> None:
    """One line per chunk of text (``chunk``; ``thinking`` for a thinking model's), then ``done``."""
    parser = turn.plan.chat.stream_parser() if turn.plan.chat is not None else None
    generated = 0
    try:
        async for _, event in turn.events(firsts):
            if isinstance(event, GenerationResult):
                data = _counts(event)
                if parser is not None:
                    delta, output = parser.finish()
                    await _send_delta(conn, delta.thinking, delta.content)
                    if chat:
                        data["message"] = _message(output)
                await conn.send(ok_reply("done", data))
                return
            generated += len(event.token_ids)
            thinking, text = "", event.text
            if parser is not None:
                delta = parser.feed(event.text)
                thinking, text = delta.thinking, delta.content
            await _send_delta(conn, thinking, text)
    except RequestCancelledError:
        if not (conn.cancelled or conn.closed.is_set()):
            raise
        await conn.send(ok_reply("done", {"finish_reason": "cancelled", "completion_tokens": generated}))


async def _send_delta(conn: Connection, thinking: str, text: str) -> None:
    if thinking:
        await conn.send(ok_reply("thinking", thinking))
    if text:
        await conn.send(ok_reply("chunk", text))


async def infer(conn: Connection, arg: str) -> bool:
    req = _request(conn, stream=False, prompt=text_argument(arg, "prompt"))
    return await _whole(conn, await start_prompt(conn.bridge.service, req, gone=conn.gone), chat=False)


async def stream(conn: Connection, arg: str) -> bool:
    req = _request(conn, stream=True, prompt=text_argument(arg, "prompt"))
    return await _streamed(conn, await start_prompt(conn.bridge.service, req, gone=conn.gone), chat=False)


async def chat(conn: Connection, arg: str) -> bool:
    req = _request(conn, stream=False, messages=_messages(conn, arg))
    return await _whole(conn, await start_chat(conn.bridge.service, req, gone=conn.gone), chat=True)


async def chat_stream(conn: Connection, arg: str) -> bool:
    req = _request(conn, stream=True, messages=_messages(conn, arg))
    return await _streamed(conn, await start_chat(conn.bridge.service, req, gone=conn.gone), chat=True)


async def embed(conn: Connection, arg: str) -> bool:
    text = text_argument(arg, "text")
    service = conn.bridge.service
    lease = await service.acquire(_model(conn), gone=conn.gone)
    try:
        embedded = await embed_texts(service, lease, [text], truncate=False, normalize=True, gone=conn.gone)
    finally:
        lease.release()
    vector = embedded.vectors[0]
    await conn.send(ok_reply("embedding", {"embedding": [float(x) for x in vector], "dimensions": len(vector),
                                           "prompt_tokens": embedded.n_tokens}))
    return True


GENERATION_COMMANDS: dict[str, Handler] = {
    "INFER": infer, "STREAM": stream, "CHAT": chat, "CHATSTREAM": chat_stream, "EMBED": embed,
}
