"""The bridge's commands other than generation: PING, HELP, STATUS, QUIT, SHUTDOWN, AUTH, LOAD, FREE,
MODELS, SET, GET, RESET, CANCEL. Each is a thin translation onto the serving layer."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from ..errors import AccessDeniedError, InvalidParameterError
from .connection import Connection, Handler
from .generate import GENERATION_COMMANDS
from .protocol import error_reply, ok_reply, text_argument

__all__ = ["COMMANDS", "looks_like_path"]


def looks_like_path(name: str) -> bool:
    """A LOAD argument naming a GGUF file rather than a stored model."""
    return "/" in name or name.endswith(".gguf") or name.startswith("~")


async def ping(conn: Connection, _arg: str) -> bool:
    await conn.send(ok_reply("pong"))
    return True


async def help_(conn: Connection, _arg: str) -> bool:
    await conn.send(ok_reply("commands", sorted(COMMANDS)))
    return True


async def quit_(conn: Connection, _arg: str) -> bool:
    await conn.send(ok_reply("bye"))
    return False


async def shutdown(conn: Connection, _arg: str) -> bool:
    if not conn.peer.local or conn.peer.uid != os.getuid():
        raise AccessDeniedError("SHUTDOWN is allowed only from the bridge's own user on its Unix socket")
    await conn.send(ok_reply("shutting down"))
    conn.bridge.stopping.set()
    return False


async def auth(conn: Connection, arg: str) -> bool:
    token = conn.bridge.config.token
    if conn.authenticated:
        await conn.send(ok_reply("authenticated"))
        return True
    if not token or not hmac.compare_digest(arg.strip().encode(), token.encode()):
        await conn.send(error_reply(AccessDeniedError("wrong token; the connection is closed")))
        return False
    conn.authenticated = True
    await conn.send(ok_reply("authenticated"))
    return True


def _model_status(status: Any) -> dict[str, Any]:
    health = status.health
    running = health.running if health else 0
    return {"name": status.name, "state": status.state, "slots": status.config.n_slots, "busy": running,
            "free": max(0, status.config.n_slots - running), "queue": health.waiting if health else 0,
            "n_ctx": status.config.n_ctx, "in_use": status.in_use}


def _engine_counts(conn: Connection) -> dict[str, int]:
    runtime = conn.lease.runtime if conn.lease is not None else None
    if runtime is None:
        return {}
    snap = runtime.snapshot()
    return {"steps": snap.steps, "generated_tokens": snap.generated_tokens, "prompt_tokens": snap.prompt_tokens,
            "sessions_saved": snap.session_saved, "sessions_restored": snap.session_restored,
            "session_restored_tokens": snap.session_restored_tokens}


async def status(conn: Connection, _arg: str) -> bool:
    service = conn.bridge.service
    models = [_model_status(s) for s in await service.blocking(service.manager.status)]
    mine = next((m for m in models if conn.lease is not None and m["name"] == conn.lease.name), None)
    data = {"version": conn.bridge.config.version, "model": conn.model, "clients": len(conn.bridge.connections),
            "slots_busy": sum(m["busy"] for m in models) if mine is None else mine["busy"],
            "slots_free": sum(m["free"] for m in models) if mine is None else mine["free"],
            "queue_depth": sum(m["queue"] for m in models) if mine is None else mine["queue"],
            "loaded": models, "engine": _engine_counts(conn)}
    await conn.send(ok_reply("status", data))
    return True


async def load(conn: Connection, arg: str) -> bool:
    name = text_argument(arg, "model")
    if looks_like_path(name):
        if not conn.peer.local:
            raise AccessDeniedError("a GGUF path can be loaded only over the Unix socket; LOAD a stored name")
        name = str(Path(name).expanduser().resolve())
    lease = await conn.bridge.service.acquire(name, gone=conn.gone)
    conn.release()
    conn.lease, conn.model = lease, lease.name
    await conn.send(ok_reply("loaded", {"model": lease.name, "n_ctx": lease.config.n_ctx,
                                        "slots": lease.config.n_slots, "load_s": round(lease.load_s, 3)}))
    return True


async def free(conn: Connection, _arg: str) -> bool:
    held = conn.model
    conn.release()
    conn.model = None
    await conn.send(ok_reply("freed", {"model": held}))
    return True


async def models(conn: Connection, _arg: str) -> bool:
    service = conn.bridge.service
    stored = await service.blocking(service.store.list)
    loaded = {s.name for s in await service.blocking(service.manager.status)}
    data = [{"name": m.name, "size": m.size, "loaded": m.name in loaded} for m in stored]
    await conn.send(ok_reply("models", data))
    return True


async def set_(conn: Connection, arg: str) -> bool:
    name, _, value = arg.partition(" ")
    if not name or not value.strip():
        raise InvalidParameterError("usage: SET <setting> <value> (null unsets it)", field="setting")
    kept = await conn.bridge.service.blocking(conn.settings.set, name, value.lstrip(" \t"))
    await conn.send(ok_reply("set", {name.lower(): kept}))
    return True


async def get(conn: Connection, arg: str) -> bool:
    name = arg.strip()
    data = {name.lower(): conn.settings.get(name)} if name else dict(conn.settings.values)
    await conn.send(ok_reply("settings", data))
    return True


async def reset(conn: Connection, arg: str) -> bool:
    conn.settings.reset(arg.strip())
    await conn.send(ok_reply("reset", dict(conn.settings.values)))
    return True


async def cancel(conn: Connection, _arg: str) -> bool:
    """The reply to a CANCEL: whether it ended the generation it followed (see Connection.read_ahead)."""
    done, conn.cancelled = conn.cancelled, False
    await conn.send(ok_reply("cancelled" if done else "nothing to cancel", {"cancelled": done}))
    return True


COMMANDS: dict[str, Handler] = {
    "PING": ping, "HELP": help_, "QUIT": quit_, "SHUTDOWN": shutdown, "AUTH": auth, "STATUS": status,
    "LOAD": load, "FREE": free, "MODELS": models, "SET": set_, "GET": get, "RESET": reset, "CANCEL": cancel,
    **GENERATION_COMMANDS,
}
