"""Every ```python block of README.md runs as written (in a subprocess, with SmolLM2 in the store).

A block preceded by ``<!-- no-run: reason -->`` is skipped with that reason; use it only where
running is really impossible.  A block must print something (the README shows its output).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*no-run:\s*(?P<skip>.*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of each ```python block."""
    return [(text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("skip"))
            for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_extractor_finds_blocks_and_skip_markers() -> None:
    found = python_blocks("a\n```python\nprint(1)\n```\n<!-- no-run: needs X -->\n```python\nx\n```\n")
    assert found == [(3, "print(1)\n", None), (7, "x\n", "needs X")]
    assert len(BLOCKS) >= 2


@pytest.mark.timeout(600)
@pytest.mark.parametrize("line,code,skip", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_python_block_runs(line: int, code: str, skip: str | None, smollm2_path: Path,
                                  tmp_path: Path) -> None:
    if skip:
        pytest.skip(skip)
    script = tmp_path / f"readme_{line}.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"README.md:{line} printed nothing"
    for echo in done.stdout.splitlines():
        print(f"README.md:{line}: {echo}")
