"""Password Modify (RFC 3062) through the front: over TLS only, for sources that allow it,
forwarded to the directory as the user (SPEC §2, §6), against the real slapd over LDAPS."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from tests.gateway.realgw import slapd_source
from tests.ldapproxy.clients import add_person
from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.ldap_client import close_quietly
from tests.servers.slapd import Slapd
from tests.servers.tls import TlsFiles


@pytest.fixture(scope="module")
def changing_gateway(slapd_tls: Slapd, front_tls: TlsFiles) -> Iterator[GatewayProcess]:
    source = slapd_source(
        [slapd_tls.ldaps_url], ca_file=str(slapd_tls.ca_file), allow_password_change=True
    )
    yield from running(GatewayProcess([source], tls=front_tls))


@contextlib.contextmanager
def _bound(
    gateway: GatewayProcess, ca_file: Path, dn: str, password: str, *, start_tls: bool = True
) -> Iterator[ldap3.Connection]:
    """An ldap3 connection to the front, after StartTLS (unless told not to), bound as `dn`."""
    tls = ldap3.Tls(ca_certs_file=str(ca_file), validate=2)
    server = ldap3.Server("127.0.0.1", port=gateway.port, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=dn, password=password, receive_timeout=10)
    try:
        conn.open()
        if start_tls:
            assert conn.start_tls()
        assert conn.bind(), conn.result
        yield conn
    finally:
        close_quietly(conn)


def test_a_user_changes_their_directory_password_over_starttls(
    changing_gateway: GatewayProcess, slapd_tls: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd_tls, "pwchange")
    with _bound(changing_gateway, front_tls.ca_file, person.dn, person.password) as conn:
        changed = conn.extend.standard.modify_password(person.dn, person.password, "a-New-pw-7!")
        assert changed is True, conn.result
        wrong_old = conn.extend.standard.modify_password(person.dn, "not-it", "other-pw-8!")
        assert wrong_old is False and conn.result["result"] == 49
    # The directory itself has the new password, and the gateway binds with it.
    upstream = ldap3.Connection(
        ldap3.Server(slapd_tls.url, get_info=ldap3.NONE), person.dn, "a-New-pw-7!"
    )
    assert upstream.bind()
    close_quietly(upstream)
    with _bound(changing_gateway, front_tls.ca_file, person.dn, "a-New-pw-7!"):
        pass


def test_password_modify_in_the_clear_is_refused(
    changing_gateway: GatewayProcess, slapd_tls: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd_tls, "pwclear")
    with _bound(
        changing_gateway, front_tls.ca_file, person.dn, person.password, start_tls=False
    ) as conn:
        assert conn.extend.standard.modify_password(person.dn, person.password, "x-Y-z-9!") is False
        assert conn.result["result"] == 13  # confidentialityRequired


def test_sources_without_allow_password_change_refuse(
    corp_gateway: GatewayProcess, slapd: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd, "pwdeny")
    with _bound(corp_gateway, front_tls.ca_file, person.dn, person.password) as conn:
        assert conn.extend.standard.modify_password(person.dn, person.password, "x-Y-z-9!") is False
        assert conn.result["result"] == 50
