"""Start-up and shutdown: permission bits, a stale socket replaced, a live one refused, TCP tokens,
SHUTDOWN only from the bridge's own user, the drain on SIGTERM (every frontend's drain:
tests/reliability/test_faults.py)."""

from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path

import pytest
from bridge_helpers import Client, launch, short_dir, start_bridge
from waiting import wait_until


def test_private_directory_and_socket_modes(bridge_home: Path) -> None:
    runtime = short_dir()
    started = start_bridge(bridge_home, env={"XDG_RUNTIME_DIR": str(runtime)})
    try:
        assert started.path == runtime / "llamarun" / "bridge.sock"
        assert stat.S_IMODE(started.path.parent.stat().st_mode) == 0o700
        info = started.path.lstat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        with started.client(timeout=10) as c:
            assert c.reply("SHUTDOWN")["message"] == "shutting down"
        assert started.proc.wait(30) == 0
        assert not started.path.exists()
    finally:
        started.stop()


def test_loose_directory_is_tightened(bridge_home: Path) -> None:
    runtime = short_dir()
    (runtime / "llamarun").mkdir(mode=0o755)
    os.chmod(runtime / "llamarun", 0o755)
    started = start_bridge(bridge_home, env={"XDG_RUNTIME_DIR": str(runtime)})
    try:
        assert stat.S_IMODE((runtime / "llamarun").stat().st_mode) == 0o700
    finally:
        assert started.stop() == 0


def test_stale_socket_is_replaced(bridge_home: Path) -> None:
    path = short_dir() / "b.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # a socket file nobody listens on, as a crashed bridge leaves it
    dead.close()
    assert path.exists()
    started = start_bridge(bridge_home, str(path))
    try:
        with started.client(timeout=10) as c:
            assert c.reply("PING")["message"] == "pong"
    finally:
        assert started.stop() == 0


def test_live_socket_is_never_stolen(bridge_home: Path) -> None:
    path = short_dir() / "b.sock"
    first = start_bridge(bridge_home, str(path))
    try:
        second = launch(bridge_home, str(path))
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1 and "another bridge is running" in err, err
        with first.client(timeout=10) as c:
            assert c.reply("PING")["message"] == "pong"
    finally:
        assert first.stop() == 0
    # a listener that is not a bridge (no lock file) is not taken either; nor is a plain file
    other = short_dir() / "x.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(other))
    listener.listen(1)
    try:
        proc = launch(bridge_home, str(other))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "already listening" in err, err
    finally:
        listener.close()
    plain = short_dir() / "file.sock"
    plain.write_text("keep me")
    proc = launch(bridge_home, str(plain))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "is not a socket" in err and plain.read_text() == "keep me"


def test_tcp_needs_the_token(bridge_home: Path) -> None:
    started = start_bridge(bridge_home, str(short_dir() / "b.sock"), "--tcp", "127.0.0.1:0",
                           env={"LLAMARUN_BRIDGE_TOKEN": "s3cret-token"})
    try:
        assert started.tcp is not None
        with Client(tcp=started.tcp, timeout=10) as c:
            answer = c.reply("PING")
            assert answer["code"] == "access_denied"
            assert c.read() is None  # refused and closed
        with Client(tcp=started.tcp, timeout=10) as c:
            assert c.reply("AUTH wrong")["code"] == "access_denied"
            assert c.read() is None
        with Client(tcp=started.tcp, timeout=10) as c:
            assert c.reply("AUTH s3cret-token")["message"] == "authenticated"
            assert c.reply("PING")["message"] == "pong"
            assert c.reply("LOAD /etc/passwd")["code"] == "access_denied"  # no paths over TCP
            assert c.reply("SHUTDOWN")["code"] == "access_denied"  # nor SHUTDOWN
        assert started.alive()
    finally:
        assert started.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_shutdown_from_another_user_is_refused(bridge_home: Path) -> None:
    started = start_bridge(bridge_home, str(short_dir() / "b.sock"))
    try:
        os.chmod(started.path.parent, 0o755)
        os.chmod(started.path, 0o666)  # let another user reach it, for this test only
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: nobody
            try:
                os.setgid(65534)
                os.setuid(65534)
                with Client(started.path, timeout=10) as c:
                    os.write(write_end, c.reply("SHUTDOWN")["code"].encode())
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read_end, 100) == b"access_denied"
        assert started.alive()
    finally:
        assert started.stop() == 0


def test_sigterm_drains_the_running_stream_refuses_new_commands_and_a_second_signal_cuts(
        bridge_home: Path) -> None:
    started = start_bridge(bridge_home, "--parallel", "1", "--ctx", "2048", "--shutdown-timeout", "60",
                           env={"XDG_RUNTIME_DIR": str(short_dir())})
    try:
        with started.client() as streaming, started.client() as idle:
            for line in ("LOAD tiny", "SET max_tokens 2000", "SET ignore_eos true"):
                streaming.ok(line)
            streaming.send("STREAM Once upon a time")
            assert streaming.read()["message"] == "chunk"
            os.kill(started.proc.pid, signal.SIGTERM)
            refused: list[dict] = []
            assert wait_until(lambda: refused.append(idle.reply("PING")) or refused[-1]["status"] == "error",
                              timeout=10)
            assert refused[-1]["code"] == "overloaded" and "shutting down" in refused[-1]["message"]
            assert started.alive()  # still draining: the stream runs on
            os.kill(started.proc.pid, signal.SIGTERM)  # the second signal: stop now
            replies = []
            while (reply := streaming.read()) is not None:
                replies.append(reply)
            assert not any(r["message"] == "done" and r["data"]["finish_reason"] == "length" for r in replies)
        assert started.proc.wait(30) == 0
    finally:
        started.stop()
