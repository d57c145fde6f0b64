"""Fixtures of the SCIM front's tests: `harness` runs on SQLite and on PostgreSQL (store_url)."""

from collections.abc import Iterator

import pytest

from tests.scim.harness import Harness


@pytest.fixture
def harness(store_url: str) -> Iterator[Harness]:
    h = Harness(store_url)
    yield h
    h.close()


@pytest.fixture
def hard_delete_harness(store_url: str) -> Iterator[Harness]:
    """The same, with `hard_delete = true` on the `scim` source."""
    h = Harness(store_url, hard_delete=True)
    yield h
    h.close()
