"""Every ```python block of README.md runs as written (in a subprocess, with SmolLM2 in the store).

A block preceded by ``<!-- no-run: reason -->`` is skipped with that reason; use it only where
running is really impossible.  A block preceded by ``<!-- with: llamarun serve -->`` runs against a
real `llamarun serve` (SmolLM2 in its store), its ``http://127.0.0.1:11434`` pointed at that server.
A block must print something (the README shows its output).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*no-run:\s*(?P<skip>.*?)\s*-->\s*\n)?"
                    r"(?:<!--\s*with:\s*(?P<with>llamarun serve)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S)
DEFAULT_URL = "http://127.0.0.1:11434"


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of each ```python block; a block to run against a
    server starts with the marker line ``#with-server``."""
    return [(text.count("\n", 0, m.start("code")) + 1, ("#with-server\n" if m.group("with") else "") + m.group("code"),
             m.group("skip")) for m in _BLOCK.finditer(text)]


def _serve(home: Path) -> object:
    """A real `llamarun serve` over a store holding SmolLM2 (linked)."""
    import importlib.util

    from llamarun.store import ModelStore

    helpers = Path(__file__).parent / "http" / "serve_helpers.py"
    spec = importlib.util.spec_from_file_location("readme_serve_helpers", helpers)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  (its dataclasses look their module up)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    ModelStore(home).create("smollm2", ModelStore().get("smollm2").path, link=True)
    return module.start_server(home, "--parallel", "2", "--ctx", "1024")


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_extractor_finds_blocks_and_skip_markers() -> None:
    found = python_blocks("a\n```python\nprint(1)\n```\n<!-- no-run: needs X -->\n```python\nx\n```\n"
                          "<!-- with: llamarun serve -->\n```python\ny\n```\n")
    assert found == [(3, "print(1)\n", None), (7, "x\n", "needs X"), (11, "#with-server\ny\n", None)]
    assert len(BLOCKS) >= 2


@pytest.mark.timeout(600)
@pytest.mark.parametrize("line,code,skip", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_python_block_runs(line: int, code: str, skip: str | None, smollm2_path: Path,
                                  tmp_path: Path) -> None:
    if skip:
        pytest.skip(skip)
    server = None
    if code.startswith("#with-server\n"):
        server = _serve(tmp_path / "home")
        code = code.replace(DEFAULT_URL, server.url)  # type: ignore[attr-defined]
    script = tmp_path / f"readme_{line}.py"
    script.write_text(code, encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=540)
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    assert done.returncode == 0, f"README.md:{line} failed:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"README.md:{line} printed nothing"
    for echo in done.stdout.splitlines():
        print(f"README.md:{line}: {echo}")
