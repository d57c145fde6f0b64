"""python-ldap (libldap) against the front: what a refused bind says and when, one connection
surviving every refusal, and Simple Paged Results (RFC 2696) through `search_ext`."""

import contextlib
from collections.abc import Iterator

import ldap
import pytest
from ldap.controls import SimplePagedResultsControl

from tests.ldapproxy.clients import PEOPLE, add_person
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.slapd import Slapd


@pytest.fixture
def connect() -> Iterator:
    made: list = []

    def make(gateway: GatewayProcess):
        conn = ldap.initialize(gateway.url, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.set_option(ldap.OPT_TIMEOUT, 10)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        with contextlib.suppress(ldap.LDAPError):
            conn.unbind_s()


def refusal(conn, name: str, password: str) -> tuple[type[ldap.LDAPError], str]:
    """The exception class and diagnostic text of a refused simple bind."""
    with pytest.raises(ldap.LDAPError) as caught:
        conn.simple_bind_s(name, password)
    return type(caught.value), caught.value.args[0].get("info", "")


def test_simple_bind_and_whoami(connect, corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    alice = slapd.users["alice"]
    conn = connect(corp_gateway)

    conn.simple_bind_s(alice.dn, alice.password)

    assert conn.whoami_s() == f"dn:{alice.dn}"


def test_disabled_says_so_only_when_the_password_was_right(
    connect, window_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # employeeType is the window gateway's status attribute; slapd itself ignores it, so the
    # directory takes the password and the gateway refuses the account. One new user per bind:
    # within the JIT window a name read once is not read again (gateway/auth/jit.py), and without
    # a read nothing is verified, so the answer would be plain "invalid credentials".
    wrong, right, by_name = (add_person(slapd, "benched", employeeType="disabled") for _ in "abc")
    conn = connect(window_gateway)

    assert refusal(conn, wrong.dn, "not-" + wrong.password) == (
        ldap.INVALID_CREDENTIALS,
        "invalid credentials",
    )
    assert refusal(conn, right.dn, right.password) == (ldap.INVALID_CREDENTIALS, "account disabled")
    assert refusal(conn, by_name.uid, by_name.password) == (
        ldap.INVALID_CREDENTIALS,
        "account disabled",
    )


def test_seed_locked_user_gets_plain_invalid_credentials(
    connect, corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # slapd's ppolicy lock refuses bob whatever the password: nothing was verified, so
    # nothing more may be said.
    bob = slapd.users["bob"]
    conn = connect(corp_gateway)

    assert refusal(conn, bob.dn, bob.password) == (ldap.INVALID_CREDENTIALS, "invalid credentials")
    assert refusal(conn, bob.dn, "nope") == (ldap.INVALID_CREDENTIALS, "invalid credentials")


def test_expired_and_must_change_say_so_only_with_the_right_password(
    connect, corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    carol, dave = slapd.users["carol"], slapd.users["dave"]
    conn = connect(corp_gateway)

    assert refusal(conn, "carol", carol.password) == (ldap.INVALID_CREDENTIALS, "account expired")
    assert refusal(conn, "carol", "nope") == (ldap.INVALID_CREDENTIALS, "invalid credentials")
    assert refusal(conn, "dave", dave.password) == (
        ldap.INVALID_CREDENTIALS,
        "password must be changed",
    )
    assert refusal(conn, "dave", "nope") == (ldap.INVALID_CREDENTIALS, "invalid credentials")


def test_one_connection_survives_every_refusal(
    connect, corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    alice = slapd.users["alice"]
    binds = slapd.count_binds(alice.dn)
    conn = connect(corp_gateway)

    assert refusal(conn, alice.dn, "nope")[0] is ldap.INVALID_CREDENTIALS
    assert refusal(conn, alice.dn, "")[0] is ldap.UNWILLING_TO_PERFORM
    assert refusal(conn, SERVICE_DN, "nope")[0] is ldap.INVALID_CREDENTIALS
    with pytest.raises(ldap.INSUFFICIENT_ACCESS):
        conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(uid=alice)")
    conn.simple_bind_s(SERVICE_DN, SERVICE_PASSWORD)
    found = conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(uid=alice)", ["uid"])
    conn.simple_bind_s(alice.dn, alice.password)

    assert [dn for dn, _ in found] == [alice.dn]
    assert conn.whoami_s() == f"dn:{alice.dn}"
    # The wrong and the right password reached slapd; the empty one did not.
    assert slapd.count_binds(alice.dn) == binds + 2


def test_search_ext_with_simple_paged_results(
    connect, corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    conn = connect(corp_gateway)
    conn.simple_bind_s(SERVICE_DN, SERVICE_PASSWORD)
    for uid in ("alice", "dave", "frank"):
        conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, f"(uid={uid})", ["1.1"])
    everything = conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(objectClass=inetOrgPerson)", ["uid"])

    page = SimplePagedResultsControl(True, size=2, cookie="")
    pages: list[list[str]] = []
    while True:
        msgid = conn.search_ext(
            PEOPLE, ldap.SCOPE_SUBTREE, "(objectClass=inetOrgPerson)", ["uid"],
            serverctrls=[page],
        )  # fmt: skip
        _, data, _, controls = conn.result3(msgid)
        pages.append([dn for dn, _ in data])
        [answer] = [c for c in controls if c.controlType == SimplePagedResultsControl.controlType]
        if not answer.cookie:
            break
        page.cookie = answer.cookie

    assert all(len(p) <= 2 for p in pages)
    assert len(pages) == (len(everything) + 1) // 2
    walked = [dn for p in pages for dn in p]
    assert sorted(walked) == sorted(dn for dn, _ in everything)
    assert len(set(walked)) == len(walked) >= 3
