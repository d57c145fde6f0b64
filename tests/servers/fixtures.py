"""pytest fixtures for real upstream servers (loaded as a plugin by tests/conftest.py).

- `slapd`: one seeded OpenLDAP for the whole session. Shared: never change seed users or
  the configuration through it; add your own uniquely named entries.
- `slapd_tls`: the same, listening on ldaps:// and offering StartTLS (`ca_file`).
- `slapd_factory`: makes fresh servers (`Slapd` keyword arguments), torn down after the test;
  use it to stop, kill, reconfigure or mutate seed users.
- `freeradius_factory`: makes FreeRADIUS servers whose rlm_ldap points at a directory
  (`FreeRadius` arguments), torn down after the test.
- `samba_ad`: one seeded Samba Active Directory DC for the whole session (samba.py), in its
  own network namespace. Shared, like `slapd`; its tests get the `samba` marker.

Tests that use any of them get the `slapd` marker (`-m "not slapd"` deselects them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers.freeradius import FreeRadius, FreeRadiusNotInstalled
from tests.servers.freeradius import find_installation as find_freeradius
from tests.servers.samba import SambaAD, SambaUnavailable
from tests.servers.slapd import Slapd, SlapdNotInstalled, find_installation

SLAPD_FIXTURES = frozenset({"slapd", "slapd_tls", "slapd_factory"})
SKIP_REASON = "slapd not installed (apt-get install slapd ldap-utils)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLAPD_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slapd)


def _require_slapd() -> None:
    try:
        find_installation()
    except SlapdNotInstalled:
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """The shared, seeded directory (plain LDAP)."""
    _require_slapd()
    with Slapd() as server:
        yield server


@pytest.fixture(scope="session")
def slapd_tls() -> Iterator[Slapd]:
    """The shared, seeded directory with ldaps:// and StartTLS."""
    _require_slapd()
    with Slapd(tls=True) as server:
        yield server


@pytest.fixture
def slapd_factory() -> Iterator[Callable[..., Slapd]]:
    """`make(start=True, **slapd_options) -> Slapd`: a new server of this test only."""
    _require_slapd()
    made: list[Slapd] = []

    def make(*, start: bool = True, **options: Any) -> Slapd:
        server = Slapd(**options)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.close()


# -- FreeRADIUS ------------------------------------------------------------------------------


@pytest.fixture
def freeradius_factory() -> Iterator[Callable[..., FreeRadius]]:
    """`make(ldap_url, identity, password, base_dn, start=True, **options) -> FreeRadius`:
    a FreeRADIUS of this test only, authenticating against that directory.

    Skips when FreeRADIUS, rlm_ldap or radclient is missing; the reason names what and the
    Debian packages (freeradius freeradius-ldap freeradius-utils).
    """
    try:
        find_freeradius()
    except FreeRadiusNotInstalled as exc:
        pytest.skip(str(exc))
    made: list[FreeRadius] = []

    def make(
        ldap_url: str,
        identity: str,
        password: str,
        base_dn: str,
        *,
        start: bool = True,
        **options: Any,
    ) -> FreeRadius:
        server = FreeRadius(ldap_url, identity, password, base_dn, **options)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.close()


# -- Samba Active Directory ------------------------------------------------------------------

SAMBA_FIXTURES = frozenset({"samba_ad"})
SAMBA_GROUP = "samba"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "samba: needs a real Samba AD DC (root, network namespaces)")


def pytest_itemcollected(item: pytest.Item) -> None:
    # Per item, as it is collected: before `-m` deselects and before pytest-xdist turns the
    # group into a node-id suffix, both in pytest_collection_modifyitems.
    if SAMBA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.samba)
        # One DC per test process costs ~7 s of provisioning and start: under
        # `-n 2 --dist loadgroup` every test that needs it runs on the same worker.
        item.add_marker(pytest.mark.xdist_group(SAMBA_GROUP))


@pytest.fixture(scope="session")
def samba_ad() -> Iterator[SambaAD]:
    """The shared, seeded Samba AD DC: ldap:// and ldaps:// at its own address.

    Skips when Samba is not installed or network namespaces cannot be made here (not root).
    """
    server = SambaAD()
    try:
        server.start()
    except SambaUnavailable as exc:
        server.close()
        pytest.skip(str(exc))
    except BaseException:
        server.close()
        raise
    try:
        yield server
    finally:
        server.close()
