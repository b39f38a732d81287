"""`llamarun run --host` and `llamarun ps` against a real `llamarun serve` (tiny model, 127.0.0.1:0)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pexpect

from clitools import cli, spawn

PROMPT = ">>> "


def test_one_shot_through_the_server_with_timings(server: str, served_home: Path):
    proc = cli("run", "tiny", "hello there", "-n", "6", "--temperature", "0", "--verbose", "--host", server,
               home=served_home)  # greedy: sampled, the random-weight model may end before 6 tokens
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("\n")
    assert f"tiny at {server}" in proc.stderr
    assert re.search(r"prompt: \d+ tokens, [\d.]+ tokens/s", proc.stderr)
    assert re.search(r"generated: 6 tokens, [\d.]+ tokens/s", proc.stderr)
    assert re.search(r"time to first token: \d+ ms, .*finish: length", proc.stderr)


def test_piped_stdin_through_the_server(server: str, served_home: Path):
    proc = cli("run", "tiny", "-n", "3", "--host", server.removeprefix("http://"), stdin="hi from a pipe\n",
               home=served_home)
    assert proc.returncode == 0, proc.stderr


def test_ps_lists_the_loaded_model(server: str, served_home: Path):
    assert cli("run", "tiny", "x", "-n", "1", "--host", server, home=served_home).returncode == 0

    listing = json.loads(cli("ps", "--host", server, "--json", home=served_home).stdout)
    assert [m["name"] for m in listing["models"]] == ["tiny:latest"]
    table = cli("ps", "--host", server, home=served_home)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert row.startswith("tiny:latest") and "CPU" in row


def test_repl_through_the_server(server: str, served_home: Path):
    child = spawn("run", "tiny", "--host", server, home=served_home)
    try:
        child.expect_exact(PROMPT)
        child.sendline("/set parameter num_predict 3")
        child.expect_exact(PROMPT)
        child.sendline("first")
        child.expect_exact(PROMPT)
        child.sendline("/save remote")
        child.expect_exact("Saved 2 messages")
        child.expect_exact(PROMPT)
        child.sendline("/show info")
        child.expect(r"server\s+" + re.escape(server))
        child.expect(r"architecture\s+llama")
        child.expect_exact(PROMPT)
        child.sendline("/bye")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)
    messages = json.loads((served_home / "conversations" / "remote.json").read_text())["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_unknown_model_on_the_server_is_an_error_with_advice(server: str, served_home: Path):
    proc = cli("run", "no-such-model", "hi", "--host", server, home=served_home)
    assert proc.returncode == 1
    assert "not found" in proc.stderr and "pull" in proc.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_is_a_clear_error(home: Path):
    url = f"http://127.0.0.1:{_closed_port()}"
    for args in (["ps", "--host", url], ["run", "tiny", "hi", "--host", url]):
        proc = cli(*args, home=home)
        assert proc.returncode == 1, proc.stderr
        assert f"no llamarun server answers at {url}" in proc.stderr
        assert "llamarun serve" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_bad_host_is_an_error(home: Path):
    proc = cli("ps", "--host", "ftp://example.com", home=home)
    assert proc.returncode == 1
    assert "--host must be an http(s) URL" in proc.stderr
