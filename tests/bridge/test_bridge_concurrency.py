"""Many clients through the one runtime: eight streams batch together; a client that disconnects
mid-stream frees its slot; CANCEL ends a stream."""

from __future__ import annotations

import threading
import time

import pytest
from bridge_helpers import Bridge

pytestmark = pytest.mark.smollm2


def _engine(bridge: Bridge) -> dict:
    with bridge.client() as c:
        c.ok("LOAD smollm2")
        return c.ok("STATUS")


def _wait_idle(bridge: Bridge, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _engine(bridge)
        if status["slots_busy"] == 0:
            return status
        time.sleep(0.05)
    raise AssertionError(f"slots still busy: {status}")


def test_eight_streams_share_engine_steps(bridge: Bridge) -> None:
    n_clients, n_tokens = 8, 24
    before = _wait_idle(bridge)["engine"]
    results: dict[int, list] = {}

    def one(i: int) -> None:
        with bridge.client() as c:
            c.ok("LOAD smollm2")
            c.ok(f"SET max_tokens {n_tokens}")
            c.ok("SET ignore_eos true")
            results[i] = c.stream(f"STREAM Tell story number {i} about the sea.")

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - started
    after = _wait_idle(bridge)["engine"]
    assert sorted(results) == list(range(n_clients))
    for lines in results.values():
        assert lines[-1]["data"]["completion_tokens"] == n_tokens and lines[-1]["data"]["finish_reason"] == "length"
    generated = after["generated_tokens"] - before["generated_tokens"]
    steps = after["steps"] - before["steps"]
    assert generated == n_clients * n_tokens
    # one stream at a time would need a step per token; batched, a step decodes several streams
    assert steps < generated / 3, (steps, generated)
    print(f"8 streams: {generated} tokens in {steps} engine steps, {generated / elapsed:.1f} tok/s")


def test_disconnect_mid_stream_frees_the_slot(bridge: Bridge) -> None:
    before = _wait_idle(bridge)["engine"]
    c = bridge.client()
    c.ok("LOAD smollm2")
    c.ok("SET max_tokens 400")
    c.ok("SET ignore_eos true")
    c.send("STREAM Write a very long story.")
    for _ in range(3):
        assert c.read()["message"] == "chunk"
    assert _engine(bridge)["slots_busy"] == 1
    c.close()  # gone mid-stream
    after = _wait_idle(bridge)["engine"]
    assert after["generated_tokens"] - before["generated_tokens"] < 100  # stopped, not run to 400


def test_cancel_mid_stream(bridge: Bridge) -> None:
    with bridge.client() as c:
        c.ok("LOAD smollm2")
        c.ok("SET max_tokens 400")
        c.ok("SET ignore_eos true")
        c.send("STREAM Write a very long story.")
        for _ in range(3):
            assert c.read()["message"] == "chunk"
        c.send("CANCEL")
        lines = c.until_done()
        done = lines[-1]
        assert done["message"] == "done" and done["data"]["finish_reason"] == "cancelled"
        assert 3 <= done["data"]["completion_tokens"] < 100
        assert c.read() == {"status": "ok", "message": "cancelled", "data": {"cancelled": True}}
        assert c.reply("PING")["message"] == "pong"
        assert _wait_idle(bridge)["slots_busy"] == 0


def test_pipelined_commands_after_a_stream_wait_their_turn(bridge: Bridge) -> None:
    with bridge.client() as c:
        c.ok("LOAD tiny")
        c.sock.sendall(b"SET max_tokens 5\nSTREAM hi\nPING\nCANCEL\n")
        assert c.read()["message"] == "set"
        lines = c.until_done()
        assert lines[-1]["data"]["finish_reason"] in ("length", "stop")
        assert c.read()["message"] == "pong"
        assert c.read()["data"] == {"cancelled": False}  # it came after the stream, not right after it


@pytest.mark.parametrize("command", ["STREAM", "CHATSTREAM", "INFER", "CHAT"])
def test_cancel_right_behind_the_command(bridge: Bridge, command: str) -> None:
    """CANCEL written with the command, in one send, as a quick Ctrl-C in `--connect` does: it
    reaches the bridge before the request is submitted, and still cancels it (it once waited its
    turn as a pipelined command: all 400 tokens, then "nothing to cancel")."""
    before = _wait_idle(bridge)["engine"]
    with bridge.client() as c:
        c.ok("LOAD smollm2")
        c.ok("SET max_tokens 400")
        c.ok("SET ignore_eos true")
        c.sock.sendall(f"{command} Write a very long story.\nCANCEL\n".encode())
        last = c.until_done()[-1]
        if command.endswith("STREAM"):
            assert last["message"] == "done" and last["data"]["finish_reason"] == "cancelled", last
            assert last["data"]["completion_tokens"] < 100
        else:
            assert last["status"] == "error" and last["code"] == "cancelled", last
        assert c.read() == {"status": "ok", "message": "cancelled", "data": {"cancelled": True}}
        assert c.reply("PING")["message"] == "pong"
    after = _wait_idle(bridge)["engine"]
    assert after["generated_tokens"] - before["generated_tokens"] < 100  # stopped, not run to 400
