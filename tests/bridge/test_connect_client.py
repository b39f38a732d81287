"""`llamarun bridge --connect`, the client for people, driven as a person would: one command per line
on stdin (a script or a pipe), and at a terminal, where Ctrl-C cancels a stream and Ctrl-D leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest
from bridge_helpers import ROOT, Bridge, short_dir, start_bridge

PROMPT = "bridge> "
QUESTION = "Why is the sky blue?"


def _env(home: Path, **extra: str) -> dict[str, str]:
    config = home / "config.toml"
    config.touch()
    return {**os.environ, "LLAMARUN_HOME": str(home), "LLAMARUN_CONFIG": str(config), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1", **extra}


def connect(home: Path, *args: str, stdin: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`llamarun bridge --connect ARGS` reading ``stdin`` to its end."""
    return subprocess.run([sys.executable, "-m", "llamarun", "bridge", "--connect", *args], input=stdin, cwd=ROOT,
                          env=_env(home, **env), capture_output=True, text=True, timeout=120)


def spawn_connect(home: Path, socket_path: Path) -> pexpect.spawn:
    """`llamarun bridge --connect SOCKET` at a real pseudo-terminal."""
    child = pexpect.spawn(sys.executable, ["-m", "llamarun", "bridge", "--connect", str(socket_path)], cwd=str(ROOT),
                          env={**_env(home), "TERM": "dumb"}, encoding="utf-8", timeout=120, dimensions=(50, 250))
    child.delaybeforesend = 0.05
    if os.environ.get("LLAMARUN_TEST_TRANSCRIPT"):  # show the session: pytest -s with this set
        child.logfile_read = sys.stdout
    return child


def command(child: pexpect.spawn, line: str) -> str:
    """Type a line, return what is shown until the next prompt (without the echo)."""
    child.sendline(line)
    child.expect_exact(line)
    child.expect_exact(PROMPT)
    return child.before.replace("\r", "").strip("\n")


def _blocks(out: str) -> list[str | dict]:
    """The client's output after its banner: a reply line is a JSON object; a generation's text is
    printed as it comes and ends with a line of its counts, ``[{...}]``."""
    blocks: list[str | dict] = []
    text: list[str] = []
    for line in out.splitlines()[1:]:
        if line.startswith('{"status": ') and not text:
            blocks.append(json.loads(line))
        elif line.startswith('[{"finish_reason": '):
            blocks += ["\n".join(text), json.loads(line)[0]]
            text = []
        else:
            text.append(line)
    assert not text, f"text without its counts line: {text}"
    return blocks


def _slots_busy(bridge: Bridge) -> int:
    with bridge.client() as c:
        c.ok("LOAD smollm2")
        return c.ok("STATUS")["slots_busy"]


@pytest.mark.smollm2
def test_commands_on_stdin_one_per_line(bridge: Bridge, bridge_home: Path) -> None:
    """A pipe of commands to the default socket ($XDG_RUNTIME_DIR/llamarun/bridge.sock): each reply
    shown once as it comes (a stream's text, then its counts), error replies with their code and the
    connection going on after them, QUIT leaving with 0 before the lines after it."""
    script = "\n".join([
        "PING",
        "",  # a blank line is not sent
        "LOAD smollm2",
        "SET max_tokens 8",
        "SET temperature 0",
        f"CHATSTREAM {QUESTION}",  # computes the prompt: the next two reuse all of it but its last token
        f"CHAT {QUESTION}",
        f"CHATSTREAM {QUESTION}",  # the same computation as CHAT: the same greedy answer, streamed
        "FROBNICATE now",
        "LOAD nosuchmodel",
        "INFER Say hello.",
        "QUIT",
        "PING",  # never sent: QUIT left
    ]) + "\n"
    proc = connect(bridge_home, stdin=script, XDG_RUNTIME_DIR=str(bridge.path.parent.parent))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"connected to {bridge.path}; HELP lists the commands, Ctrl-D leaves"
    (pong, loaded, set_max, set_temp, _, first, chat, chat_counts, streamed, stream_counts, unknown, missing,
     infer, infer_counts, bye) = _blocks(proc.stdout)
    assert pong == {"status": "ok", "message": "pong", "data": None}
    assert loaded["message"] == "loaded" and loaded["data"]["model"] == "smollm2:latest"
    assert set_max["data"] == {"max_tokens": 8} and set_temp["data"] == {"temperature": 0.0}
    assert first["finish_reason"] == "length" and first["completion_tokens"] == 8
    assert chat.strip() and chat_counts["completion_tokens"] == 8
    # the streamed answer is shown once: its chunks, then only the counts (not the text again)
    assert streamed.strip() == chat.strip()
    assert stream_counts == chat_counts
    assert unknown["status"] == "error" and unknown["code"] == "invalid_parameter"
    assert unknown["data"] == {"field": "command"} and "FROBNICATE" in unknown["message"]
    assert missing["status"] == "error" and missing["code"] == "model_not_found"
    assert infer.strip() and infer_counts["finish_reason"] in ("length", "stop")  # still connected
    assert bye["message"] == "bye"
    assert bridge.alive()


@pytest.mark.smollm2
def test_terminal_ctrl_c_cancels_a_stream_and_ctrl_d_leaves(bridge: Bridge, bridge_home: Path) -> None:
    child = spawn_connect(bridge_home, bridge.path)
    try:
        child.expect_exact(f"connected to {bridge.path}")
        child.expect_exact(PROMPT)
        assert '"message": "loaded"' in command(child, "LOAD smollm2")
        command(child, "SET max_tokens 400")
        command(child, "SET ignore_eos true")
        child.sendline("CHATSTREAM Write a very long story about a dragon.")
        child.expect_exact("dragon.\r\n")  # the echo: what follows is the answer
        child.expect(r"[A-Za-z]{2,} [A-Za-z]{2,}")  # its first words
        child.sendintr()  # Ctrl-C: the client sends CANCEL
        child.expect(r'\[\{"finish_reason": "cancelled", "completion_tokens": (\d+)\}\]')
        assert int(child.match.group(1)) < 100
        child.expect_exact('{"status": "ok", "message": "cancelled", "data": {"cancelled": true}}')
        child.expect_exact(PROMPT)
        assert _slots_busy(bridge) == 0  # the stream stopped in the runtime, not just on the screen
        error = json.loads(command(child, "SET temperature hot"))
        assert error["status"] == "error" and error["code"] == "invalid_parameter", error
        assert command(child, "ping") == '{"status": "ok", "message": "pong", "data": null}'
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


def test_no_bridge_and_a_bridge_that_goes_away(bridge_home: Path) -> None:
    """No bridge at the path: one clear line, exit 1.  The bridge stopped while a person is
    connected: the next command says so, exit 1."""
    nowhere = short_dir() / "none.sock"
    proc = connect(bridge_home, str(nowhere), stdin="PING\n")
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"no bridge answers at {nowhere}" in proc.stderr and "unexpectedly" not in proc.stderr, proc.stderr

    started = start_bridge(bridge_home, str(short_dir() / "b.sock"))
    child = spawn_connect(bridge_home, started.path)
    try:
        child.expect_exact(PROMPT)
        assert command(child, "PING") == '{"status": "ok", "message": "pong", "data": null}'
        assert started.stop() == 0
        time.sleep(0.2)
        child.sendline("PING")
        child.expect_exact("the bridge closed the connection")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
        assert "Traceback" not in child.before and "unexpectedly" not in child.before, child.before
    finally:
        child.close(force=True)
        started.stop()
