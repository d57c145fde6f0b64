"""Password Modify (RFC 3062) through the front: over TLS only, for sources that allow it,
forwarded to the directory as the user (SPEC §2, §6), against the real slapd over LDAPS."""

from collections.abc import Iterator

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


def _connection(gateway: GatewayProcess, ca_file: str, dn: str, password: str) -> ldap3.Connection:
    tls = ldap3.Tls(ca_certs_file=ca_file, validate=2)
    server = ldap3.Server("127.0.0.1", port=gateway.port, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=dn, password=password, receive_timeout=10)


def test_a_user_changes_their_directory_password_over_starttls(
    changing_gateway: GatewayProcess, slapd_tls: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd_tls, "pwchange")
    conn = _connection(changing_gateway, str(front_tls.ca_file), person.dn, person.password)
    try:
        conn.open()
        assert conn.start_tls()
        assert conn.bind(), conn.result
        changed = conn.extend.standard.modify_password(person.dn, person.password, "a-New-pw-7!")
        assert changed is True, conn.result
        wrong_old = conn.extend.standard.modify_password(person.dn, "not-it", "other-pw-8!")
        assert wrong_old is False and conn.result["result"] == 49
    finally:
        close_quietly(conn)
    # The directory itself has the new password, and the gateway binds with it.
    upstream = ldap3.Connection(
        ldap3.Server(slapd_tls.url, get_info=ldap3.NONE), person.dn, "a-New-pw-7!"
    )
    assert upstream.bind()
    close_quietly(upstream)
    again = _connection(changing_gateway, str(front_tls.ca_file), person.dn, "a-New-pw-7!")
    again.open()
    again.start_tls()
    assert again.bind(), again.result
    close_quietly(again)


def test_password_modify_in_the_clear_is_refused(
    changing_gateway: GatewayProcess, slapd_tls: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd_tls, "pwclear")
    conn = _connection(changing_gateway, str(front_tls.ca_file), person.dn, person.password)
    try:
        assert conn.bind(), conn.result
        assert conn.extend.standard.modify_password(person.dn, person.password, "x-Y-z-9!") is False
        assert conn.result["result"] == 13  # confidentialityRequired
    finally:
        close_quietly(conn)


def test_sources_without_allow_password_change_refuse(
    corp_gateway: GatewayProcess, slapd: Slapd, front_tls: TlsFiles
) -> None:
    person = add_person(slapd, "pwdeny")
    conn = _connection(corp_gateway, str(front_tls.ca_file), person.dn, person.password)
    try:
        conn.open()
        assert conn.start_tls()
        assert conn.bind(), conn.result
        assert conn.extend.standard.modify_password(person.dn, person.password, "x-Y-z-9!") is False
        assert conn.result["result"] == 50
    finally:
        close_quietly(conn)
