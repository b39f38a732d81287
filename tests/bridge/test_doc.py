"""docs/bridge.md: its nc -U session replayed as it is, its Python and C clients run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import ROOT, Bridge

pytestmark = pytest.mark.smollm2

DOC = ROOT / "docs" / "bridge.md"


def _block(marker: str, language: str) -> str:
    text = DOC.read_text()
    found = re.search(rf"<!-- {marker}.*?-->\n```{language}\n(.*?)```", text, re.DOTALL)
    assert found, f"no {language} block after <!-- {marker} in {DOC}"
    return found.group(1)


def _session() -> list[tuple[str, list[dict[str, Any]]]]:
    """(command, the replies shown after it) for each command of the documented session."""
    steps: list[tuple[str, list[dict[str, Any]]]] = []
    for line in _block("session", "console").splitlines()[1:]:  # the first line is the nc command
        if line.startswith("{"):
            steps[-1][1].append(json.loads(line))
        elif line:
            steps.append((line, []))
    return steps


def _same_shape(got: dict[str, Any], shown: dict[str, Any]) -> None:
    for key in ("status", "message", "code"):
        assert got.get(key) == shown.get(key), (got, shown)
    if isinstance(shown["data"], dict):
        assert isinstance(got["data"], dict) and set(got["data"]) == set(shown["data"]), (got, shown)
    elif shown["message"] != "chunk":  # chunk text may differ; everything else is exact
        assert got["data"] == shown["data"], (got, shown)


def test_documented_nc_session_replays(bridge: Bridge) -> None:
    steps = _session()
    assert len(steps) >= 8 and steps[-1][0] == "QUIT"
    with bridge.client() as c:
        for command, shown in steps:
            c.send(command)
            got = c.until_done()
            assert [r["message"] for r in got].count("chunk") >= 1 if shown[0]["message"] == "chunk" else True
            assert len(got) == len(shown) or shown[0]["message"] == "chunk", (command, got, shown)
            _same_shape(got[-1], shown[-1])
            for reply in got[:-1]:
                assert reply["message"] == "chunk"
        assert c.read() is None  # QUIT closed it


def test_documented_python_client(bridge: Bridge, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(_block("client", "python"))
    assert len(script.read_text().splitlines()) <= 22
    out = subprocess.run([sys.executable, str(script), str(bridge.path), "Why is the sky blue?"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip()) > 10


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_documented_c_client(bridge: Bridge, tmp_path: Path) -> None:
    source = tmp_path / "bridge.c"
    source.write_text(_block("client", "c"))
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "bridge"), str(source)], check=True, timeout=120)
    out = subprocess.run([str(tmp_path / "bridge"), str(bridge.path), "LOAD smollm2", "SET max_tokens 5",
                          "STREAM Why is the sky blue?", "PING"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert replies[0]["message"] == "loaded" and replies[-1]["message"] == "pong"
    assert replies[-2]["message"] == "done" and replies[-2]["data"]["completion_tokens"] == 5
    assert all(r["message"] == "chunk" for r in replies[2:-2])
