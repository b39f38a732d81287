"""The reliability suite's hostile inputs (tests/reliability/hostile.py) against the cluster ingress's
HTTP APIs, through the same adapters as `llamarun serve` (tests/reliability/frontends.py): each case a
clear 4xx or an answer, never a server error, and the ingress answers a normal request after it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

RELIABILITY = Path(__file__).resolve().parents[1] / "reliability"
if str(RELIABILITY) not in sys.path:
    sys.path.append(str(RELIABILITY))

from frontends import ADAPTERS, HttpFrontend, check_case  # noqa: E402
from hostile import hostile_cases  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.smollm2, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def ingress_frontends(cluster) -> Iterator[dict[str, HttpFrontend]]:
    made = {name: HttpFrontend(name, route, body, cluster.url) for name, (route, body) in ADAPTERS.items()}
    yield made
    for frontend in made.values():
        frontend.close()


@pytest.mark.parametrize("frontend", ADAPTERS)
@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: c.id)
def test_ingress_hostile_input(ingress_frontends: dict[str, HttpFrontend], frontend: str, case) -> None:
    check_case(ingress_frontends[frontend], f"the cluster's {frontend} API", case)
