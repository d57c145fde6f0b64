"""Gateways under test: `idgate serve --only ldap` subprocesses in front of the real servers.

One gateway per upstream and configuration, for the whole session (a start costs ~2 s):

- `corp_gateway`: the shared slapd (`realgw.slapd_source`: ppolicy lock and shadowExpire as
  status), JIT on every bind, StartTLS and LDAPS with the throwaway CA;
- `window_gateway`: the shared slapd with a status slapd itself does not enforce
  (`employeeType: disabled`), and a JIT window of `WINDOW_SECONDS`: what the gateway decides
  is all that refuses a user there;
- `ad_gateway`: the shared Samba AD DC (`realgw.samba_source`).

Tests change only users they add themselves (`realgw.unique` names).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.realgw import samba_source, slapd_source
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.samba import SambaAD
from tests.servers.slapd import Slapd
from tests.servers.tls import TlsFiles, shared_tls_files

WINDOW_SECONDS = 2
DISABLED_STATUS = {"disabled_attribute": "employeeType", "disabled_values": ["disabled"]}


def running(gateway: GatewayProcess) -> Iterator[GatewayProcess]:
    """Start `gateway`, yield it, and at the end require a clean SIGTERM shutdown."""
    try:
        gateway.start()
        yield gateway
        if gateway.running:
            gateway.shut_down()
    finally:
        gateway.close()


@pytest.fixture(scope="session")
def front_tls() -> TlsFiles:
    return shared_tls_files()


@pytest.fixture(scope="session")
def corp_gateway(slapd: Slapd, front_tls: TlsFiles) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess([slapd_source([slapd.url])], tls=front_tls, ldaps=True)
    yield from running(gateway)


@pytest.fixture(scope="session")
def window_gateway(slapd: Slapd) -> Iterator[GatewayProcess]:
    source = slapd_source([slapd.url], status=DISABLED_STATUS)
    gateway = GatewayProcess([source], jit_interval_seconds=WINDOW_SECONDS)
    yield from running(gateway)


@pytest.fixture(scope="session")
def ad_gateway(samba_ad: SambaAD) -> Iterator[GatewayProcess]:
    yield from running(GatewayProcess([samba_source(samba_ad)]))


@pytest.fixture(scope="session")
def ca_file(front_tls: TlsFiles) -> Path:
    return front_tls.ca_file
