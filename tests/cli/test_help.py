"""Help texts and listings as a person reads them: nothing leaked, columns aligned, markup characters
shown, one size convention (binary units) in `list`, `show` and `/show info`."""

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


def test_set_parameter_list_is_aligned_and_sizes_agree(tiny_home: Path):
    listed = cli("list", home=tiny_home).stdout.splitlines()[1]
    size = re.search(r"\s(\d+\.\d (?:KiB|MiB))\s", listed).group(1)
    assert re.search(rf"size\s+{re.escape(size)}$", cli("show", "tiny", home=tiny_home).stdout, re.M)
    child = spawn("run", "tiny", home=tiny_home)
    child.expect_exact(PROMPT)
    assert re.search(rf"size\s+{re.escape(size)}", command(child, "/show info"))
    listing = command(child, "/set parameter")
    rows = [line for line in listing.splitlines() if line.strip().startswith("/set parameter ")]
    assert len(rows) >= 10, listing
    columns = {re.match(r"\s*/set parameter \S+ <[^>]+>(?: \.\.\.)?\s+", row).end() for row in rows}
    assert len(columns) == 1, rows
    assert leave(child) == 0
