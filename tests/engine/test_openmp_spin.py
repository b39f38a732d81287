"""The short OpenMP spin (issue 18, item 8) reaches libgomp: it is set before libgomp loads.

Times are not asserted (see benchmarks/bench_contention.py); this checks the mechanism: in a
fresh process that imports the whole server stack, libgomp is not loaded before the first
``lib()``, ``GOMP_SPINCOUNT`` is set when it loads, and a user's own setting wins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, os
import numpy, llamarun, llamarun.http, llamarun.cli  # everything `llamarun serve` imports
def gomp_loaded():
    with open("/proc/self/maps") as f:
        return "libgomp" in f.read()
before = gomp_loaded()
from llamarun.engine._lib import lib
module = lib()
info = module.llama_print_system_info().decode()
print(json.dumps({"before": before, "after": gomp_loaded(), "openmp": "OPENMP = 1" in info,
                  "spin": os.environ.get("GOMP_SPINCOUNT"), "policy": os.environ.get("OMP_WAIT_POLICY")}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_short_spin_is_set_before_libgomp_loads() -> None:
    from llamarun.engine._lib import SPIN_COUNT

    result = _probe()
    if not result["openmp"]:
        pytest.skip("this llama.cpp is built without OpenMP")
    assert result["before"] is False  # nothing loaded libgomp before our setting
    assert result["after"] is True
    assert result["spin"] == SPIN_COUNT and result["policy"] is None


def test_users_own_setting_wins() -> None:
    assert _probe(GOMP_SPINCOUNT="5")["spin"] == "5"
    result = _probe(OMP_WAIT_POLICY="ACTIVE")
    assert result["policy"] == "ACTIVE" and result["spin"] is None
