"""Every hostile case (hostile.py) against every frontend (frontends.py): a refused case gets the
protocol's clear client error, no case gets a server error, and the server answers a normal request
after each one."""

from __future__ import annotations

import pytest
from conftest import FRONTENDS

from frontends import check_case
from hostile import hostile_cases

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: c.id)
def test_hostile_input(frontends: dict, frontend: str, case) -> None:
    check_case(frontends[frontend], frontend, case)
