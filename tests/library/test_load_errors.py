"""Errors of the library name its parameters (the CLI names its flags: tests/cli/test_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import llamarun
from llamarun.errors import InsufficientMemoryError


def test_a_load_that_does_not_fit_names_the_parameters_not_cli_flags(smollm2_path: Path) -> None:
    with pytest.raises(InsufficientMemoryError) as caught:
        llamarun.load(smollm2_path, n_ctx=8192, n_slots=4000)
    message = str(caught.value)
    assert "n_ctx=" in message and "n_slots=" in message and "force=True" in message
    assert "--" not in message  # no --ctx, --parallel or --force: those are the CLI's
