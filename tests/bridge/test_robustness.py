"""Hostile input: garbage, overlong lines, invalid UTF-8, NUL bytes, 10,000 pipelined commands,
too many connections. Each gets error replies; the bridge stays up and bounded."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from bridge_helpers import Bridge, Client, short_dir, start_bridge


def _ping_ok(bridge: Bridge) -> None:
    assert bridge.alive()
    with bridge.client() as c:
        assert c.reply("PING")["message"] == "pong"


def test_garbage_invalid_utf8_and_nul_get_error_replies(bridge: Bridge) -> None:
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(20_000)).replace(b"\n", b"")
    with bridge.client() as c:
        for line in (b"\xff\xfe\xfd", b"PI\x00NG", b"\x00", garbage, b"INFER \xc3\x28", b"12345", b"%%%"):
            answer = c.reply(line)
            assert answer["status"] == "error" and answer["code"] == "invalid_parameter", (line[:20], answer)
        assert c.reply("PING")["message"] == "pong"  # the same connection goes on
    _ping_ok(bridge)


def test_overlong_line_is_an_error_and_closes_the_connection(bridge: Bridge) -> None:
    c = bridge.client()
    sender = threading.Thread(target=lambda: _send_quietly(c, b"INFER " + b"a" * (3 << 20)), daemon=True)
    sender.start()
    answer = c.read()
    assert answer is not None and answer["status"] == "error" and answer["code"] == "invalid_parameter"
    assert "longer than 1048576 bytes" in answer["message"]
    assert c.read() is None  # closed
    c.close()
    sender.join(10)
    _ping_ok(bridge)


def _send_quietly(c: Client, data: bytes) -> None:
    try:
        c.send(data)
    except OSError:
        pass  # the bridge closed the connection first


def test_ten_thousand_pipelined_commands_bounded_memory(bridge: Bridge) -> None:
    n, value = 10_000, "x" * 4000  # 40 MB sent, 40 MB of replies
    before = bridge.rss_kib()
    with bridge.client() as c:
        payload = b"".join(f"SET system {value}{i}\n".encode() for i in range(n))
        sender = threading.Thread(target=c.sock.sendall, args=(payload,), daemon=True)
        sender.start()
        sender.join(3.0)
        assert sender.is_alive(), "the bridge read everything without the replies being read"
        peak = bridge.rss_kib()
        got = 0
        for i in range(n):
            answer = c.read()
            assert answer is not None and answer["data"] == {"system": f"{value}{i}"}, answer
            got += 1
            if i % 2000 == 0:
                peak = max(peak, bridge.rss_kib())
        sender.join(30)
        assert got == n and not sender.is_alive()
        assert c.reply("PING")["message"] == "pong"
    assert peak - before < 16 * 1024, f"bridge RSS grew by {(peak - before) // 1024} MiB"


def test_too_many_connections_get_an_error_line(bridge_home: Path) -> None:
    small = start_bridge(bridge_home, str(short_dir() / "b.sock"), "--max-connections", "2")
    try:
        first, second = small.client(timeout=10), small.client(timeout=10)
        for c in (first, second):
            assert c.reply("PING")["message"] == "pong"
        with small.client(timeout=10) as third:
            answer = third.read()
            assert answer is not None and answer["code"] == "overloaded" and "too many connections" in answer["message"]
            assert third.read() is None
        first.close()
        assert second.reply("PING")["message"] == "pong"
        for _ in range(50):  # the bridge notices the closed one
            with small.client(timeout=10) as again:
                answer = again.reply("PING")
                if answer["message"] == "pong":
                    break
        assert answer["message"] == "pong"
        second.close()
    finally:
        assert small.stop() == 0
