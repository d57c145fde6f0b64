"""Fixtures shared by the gateway tests."""

from collections.abc import Iterator

import pytest

from tests.gateway.realgw import Gateways


@pytest.fixture
def gateways() -> Iterator[Gateways]:
    """Builds runtimes (`gateways(config)`); closes them all, threads joined, at the end."""
    with Gateways() as made:
        yield made
