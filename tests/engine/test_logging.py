"""llama.cpp's log goes to Python logging (quiet by default), not straight to stderr."""

from __future__ import annotations

import subprocess
import sys


def test_loading_prints_nothing_to_stderr(tiny_model_path):
    code = (
        "from llamarun.engine import Model, Context\n"
        f"m = Model({str(tiny_model_path)!r}); c = Context(m); c.close(); m.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == ""


def test_log_reaches_the_logger_when_enabled(tiny_model_path):
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s %(message)s')\n"
        "from llamarun.engine import Model\n"
        f"Model({str(tiny_model_path)!r}).close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "llamarun.llama_cpp" in proc.stderr
