"""Every hostile case (hostile.py) against every frontend (frontends.py): a refused case gets the
protocol's clear client error, no case gets a server error, and the server answers a normal request
after each one."""

from __future__ import annotations

import pytest
from conftest import FRONTENDS

from hostile import hostile_cases

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: c.id)
def test_hostile_input(frontends: dict, frontend: str, case) -> None:
    adapter = frontends[frontend]
    outcome = adapter.send(case)
    if outcome is None:
        pytest.skip(f"{frontend} has no field for {case.id}")
    assert outcome.kind != "server_error", f"{frontend} {case.id}: {outcome.detail}"
    if case.refused:
        assert outcome.kind == "refused", f"{frontend} accepted {case.id}: {outcome.detail}"
    assert adapter.normal(), f"{frontend} does not answer a normal request after {case.id}"
