"""Help texts as a person reads them: nothing leaked, columns aligned, markup characters shown."""

from __future__ import annotations

import re
from pathlib import Path

from clitools import cli, spawn
from test_repl import PROMPT, command, leave


def test_top_level_help_has_no_leaked_fragments():
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" not in proc.stdout  # serve's examples were glued to its one-line summary
    assert re.search(r"│ stop\s+Unload a model", proc.stdout)
    assert "--debug" in proc.stdout


def test_pull_help_lists_sources_aligned_with_their_brackets():
    proc = cli("pull", "--help")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines()
            if re.match(r"\s+(smollm2|pip:|https://|hf://|ollama://|ollama-local:)\S*\s", line)]
    assert len(rows) == 7, proc.stdout
    columns = {re.search(r"\S\s{2,}(\S)", row).start(1) for row in rows}
    assert len(columns) == 1, rows  # every description starts in the same column
    for text in ("[#path/in/wheel]", "[--sha256 HEX]", "[@revision]", "ollama://[host/]namespace"):
        assert text in proc.stdout  # rich markup ate these


def test_set_parameter_list_is_aligned(tiny_home: Path):
    child = spawn("run", "tiny", home=tiny_home)
    child.expect_exact(PROMPT)
    listing = command(child, "/set parameter")
    rows = [line for line in listing.splitlines() if line.strip().startswith("/set parameter ")]
    assert len(rows) >= 10, listing
    columns = {re.match(r"\s*/set parameter \S+ <[^>]+>(?: \.\.\.)?\s+", row).end() for row in rows}
    assert len(columns) == 1, rows
    assert leave(child) == 0
