"""``llamarun bridge --connect``: an interactive client for people, in plain sockets.

Each line typed is sent as a command; the reply lines are shown until the last
one of that command (a stream's chunks are printed as text as they come).
Ctrl-C during a stream sends CANCEL; Ctrl-D (or QUIT) leaves.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import RemoteServerError

__all__ = ["BridgeClient", "interactive"]

_PARTIAL = ("chunk", "thinking")


class BridgeClient:
    """One connection to a bridge: send a command, read its reply lines."""

    def __init__(self, path: Path | str, *, timeout: float | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise RemoteServerError(f"no bridge answers at {path} ({exc.strerror or exc}); start one with "
                                    "`llamarun bridge` (it prints its socket path), or name the socket: "
                                    "llamarun bridge --connect SOCKET") from None
        self.lines = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\n")

    def read(self) -> dict[str, Any] | None:
        raw = self.lines.readline()
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def _show(reply: dict[str, Any], out: IO[str], *, streamed: bool = False) -> bool:
    """Print one reply line; True when it ends its command.  After a stream's chunks (``streamed``)
    its ``done`` line adds only the counts: the text it repeats is already on the screen."""
    message, data = reply.get("message"), reply.get("data")
    if reply.get("status") == "ok" and message in _PARTIAL:
        out.write(str(data))
        out.flush()
        return False
    if reply.get("status") == "ok" and message == "done" and isinstance(data, dict):
        text = "" if streamed else data.get("text") or (data.get("message") or {}).get("content") or ""
        counts = {k: v for k, v in data.items() if k not in ("text", "message")}
        out.write(f"{text}\n[{json.dumps(counts)}]\n")
    else:
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
    out.flush()
    return True


def _answer(client: BridgeClient, out: IO[str]) -> bool:
    """Show one command's reply; Ctrl-C cancels a stream. False once the bridge has closed."""
    cancelled = streamed = False
    while True:
        try:
            reply = client.read()
        except KeyboardInterrupt:
            if not cancelled:
                client.send("CANCEL")
                cancelled = True
            continue
        if reply is None:
            return False
        if _show(reply, out, streamed=streamed):
            break
        streamed = True
    return not cancelled or _answer(client, out)  # the CANCEL's own reply


def interactive(path: Path, *, stdin: IO[str] = sys.stdin, out: IO[str] = sys.stdout) -> int:
    """Read commands from the terminal and show the replies; 0 on QUIT/EOF, 1 if the bridge closed."""
    if stdin.isatty():
        import readline  # noqa: F401 - line editing and history for input()
    client = BridgeClient(path)
    out.write(f"connected to {path}; HELP lists the commands, Ctrl-D leaves\n")
    try:
        while True:
            try:
                line = input("bridge> ") if stdin.isatty() else stdin.readline()
            except (EOFError, KeyboardInterrupt):
                return 0
            if not stdin.isatty() and not line:
                return 0
            line = line.rstrip("\n")
            if not line.strip():
                continue
            leaving = line.strip().upper() in ("QUIT", "SHUTDOWN")
            try:
                client.send(line)
                answered = _answer(client, out)
            except (BrokenPipeError, ConnectionResetError):  # the bridge stopped since the last command
                answered = False
            if not answered and not leaving:
                out.write("the bridge closed the connection\n")
                return 1
            if leaving:
                return 0
    finally:
        client.close()
