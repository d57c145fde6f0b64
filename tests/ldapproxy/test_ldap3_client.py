"""ldap3 against the front: binds by every name form, rebinding one connection through
several identities, paged search, WhoAmI, and what the front refuses (RFC 4511, RFC 4513)."""

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException
from ldap3.protocol.rfc4511 import AuthenticationChoice, BindRequest, Simple, Version

from tests.ldapproxy.clients import PEOPLE, can_bind, ldap3_connection, service_connection
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.samba import SambaAD
from tests.servers.slapd import Slapd

PROTOCOL_ERROR = 2
AUTH_METHOD_NOT_SUPPORTED = 7
UNAVAILABLE_CRITICAL_EXTENSION = 12
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
UNWILLING_TO_PERFORM = 53


def whoami_of(conn: ldap3.Connection) -> str:
    return conn.extend.standard.who_am_i() or ""


def search_code(conn: ldap3.Connection, base: str = PEOPLE, **options) -> int:
    conn.search(base, "(uid=alice)", attributes=["uid"], **options)
    return int(conn.result["result"])


# -- binds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["dn", "upper-case dn", "bare name"])
def test_slapd_user_binds_by_dn_and_name(
    corp_gateway: GatewayProcess, slapd: Slapd, form: str
) -> None:
    alice = slapd.users["alice"]
    name = {"dn": alice.dn, "upper-case dn": alice.dn.upper(), "bare name": "alice"}[form]

    with ldap3_connection(corp_gateway, name, alice.password) as conn:
        assert conn.bind(), conn.result
        assert whoami_of(conn).lower() == f"dn:{alice.dn}".lower()


@pytest.mark.parametrize("form", ["dn", "bare name", "upn", "down-level"])
def test_ad_user_binds_by_every_name_form(
    ad_gateway: GatewayProcess, samba_ad: SambaAD, form: str
) -> None:
    alice = samba_ad.users["alice"]
    name = {
        "dn": alice.dn,
        "bare name": alice.sam,
        "upn": alice.upn,
        "down-level": alice.down_level,
    }[form]

    with ldap3_connection(ad_gateway, name, alice.password) as conn:
        assert conn.bind(), conn.result
        assert whoami_of(conn).lower() == f"dn:{alice.dn}".lower()


def test_ad_wrong_password_and_disabled_user_are_refused(
    ad_gateway: GatewayProcess, samba_ad: SambaAD
) -> None:
    alice, bob = samba_ad.users["alice"], samba_ad.users["bob"]

    wrong = can_bind(ad_gateway, alice.upn, "Wr0ng!password")
    disabled = can_bind(ad_gateway, bob.down_level, bob.password)

    assert wrong["result"] == disabled["result"] == INVALID_CREDENTIALS
    # Whatever AD said (data 52e / 533), its diagnostic text never reaches the client.
    assert "data" not in wrong["message"] and "data" not in disabled["message"]


def test_rebinding_one_connection_switches_identity_each_time(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    alice = slapd.users["alice"]
    with ldap3_connection(corp_gateway, SERVICE_DN, SERVICE_PASSWORD) as conn:
        assert conn.bind(), conn.result
        assert whoami_of(conn) == f"dn:{SERVICE_DN}"
        assert search_code(conn) == 0 and len(conn.entries) == 1

        assert conn.rebind(alice.dn, alice.password), conn.result
        assert whoami_of(conn) == f"dn:{alice.dn}"
        # A user reads their own entry, nothing else.
        assert search_code(conn) == INSUFFICIENT_ACCESS_RIGHTS
        assert search_code(conn, alice.dn, search_scope=ldap3.BASE) == 0
        assert [e.entry_dn for e in conn.entries] == [alice.dn]

        assert conn.rebind(SERVICE_DN, SERVICE_PASSWORD), conn.result
        assert whoami_of(conn) == f"dn:{SERVICE_DN}"
        assert search_code(conn) == 0

        # A failed bind leaves the connection anonymous (RFC 4511 §4.2.1), not the service.
        assert not conn.rebind(SERVICE_DN, "not-the-service-password")
        assert conn.result["result"] == INVALID_CREDENTIALS
        assert whoami_of(conn) == ""
        assert search_code(conn) == INSUFFICIENT_ACCESS_RIGHTS

        assert conn.rebind(alice.dn, alice.password), conn.result
        conn.user, conn.password = None, None
        assert conn.rebind(authentication=ldap3.ANONYMOUS), conn.result
        assert whoami_of(conn) == ""
        assert search_code(conn) == INSUFFICIENT_ACCESS_RIGHTS


def test_sasl_bind_is_not_supported(corp_gateway: GatewayProcess) -> None:
    with ldap3_connection(
        corp_gateway, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL
    ) as conn:
        assert not conn.bind()
        assert conn.result["result"] == AUTH_METHOD_NOT_SUPPORTED
        assert whoami_of(conn) == ""


def test_sasl_digest_md5_attempt_is_not_supported(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    alice = slapd.users["alice"]
    with ldap3_connection(
        corp_gateway,
        authentication=ldap3.SASL,
        sasl_mechanism=ldap3.DIGEST_MD5,
        sasl_credentials=(None, "alice", alice.password, None),
    ) as conn:
        # ldap3 expects a challenge; it gets a refusal, which it reports or raises.
        try:
            bound = conn.bind()
        except LDAPException:
            bound = False
        assert not bound
        assert conn.result["result"] == AUTH_METHOD_NOT_SUPPORTED


def test_who_am_i_when_anonymous(corp_gateway: GatewayProcess) -> None:
    with ldap3_connection(corp_gateway) as conn:
        assert whoami_of(conn) == ""
        assert conn.result["result"] == 0


# -- searching ----------------------------------------------------------------------------------


def test_search_before_bind_is_refused(corp_gateway: GatewayProcess) -> None:
    with ldap3_connection(corp_gateway) as conn:
        assert search_code(conn) == INSUFFICIENT_ACCESS_RIGHTS
        assert conn.entries == []


def test_root_dse_is_readable_anonymously(corp_gateway: GatewayProcess) -> None:
    with ldap3_connection(corp_gateway) as conn:
        assert conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["*", "+"])
        [entry] = conn.response
        attributes = entry["attributes"]
        assert PEOPLE in attributes["namingContexts"]
        assert "1.3.6.1.4.1.4203.1.11.3" in attributes["supportedExtension"]
        assert "1.2.840.113556.1.4.319" in attributes["supportedControl"]


def test_paged_search_helper_walks_every_page(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    with service_connection(corp_gateway) as conn:
        for uid in ("alice", "dave", "frank"):
            conn.search(PEOPLE, f"(uid={uid})", attributes=["1.1"])
        conn.search(PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"])
        unpaged = sorted(e["dn"].lower() for e in conn.response if e["type"] == "searchResEntry")

        paged = conn.extend.standard.paged_search(
            PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"], paged_size=1,
            generator=False,
        )  # fmt: skip

        dns = sorted(e["dn"].lower() for e in paged if e["type"] == "searchResEntry")
        assert dns == unpaged
        assert len(dns) >= 3
        assert conn.result["result"] == 0


# -- what the front refuses ---------------------------------------------------------------------


def test_writes_are_refused(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    alice = slapd.users["alice"]
    with service_connection(corp_gateway) as conn:
        attempts = {
            "add": lambda: conn.add(f"uid=mallory,{PEOPLE}", ["inetOrgPerson"],
                                    {"cn": "m", "sn": "m"}),
            "modify": lambda: conn.modify(alice.dn, {"mail": [(ldap3.MODIFY_REPLACE, ["x@y"])]}),
            "delete": lambda: conn.delete(alice.dn),
            "modify_dn": lambda: conn.modify_dn(alice.dn, "uid=alicia"),
            "compare": lambda: conn.compare(alice.dn, "uid", "alice"),
        }  # fmt: skip
        codes = {}
        for name, attempt in attempts.items():
            attempt()
            codes[name] = conn.result["result"]
        # The connection survives every refusal.
        assert search_code(conn) == 0

    assert codes == dict.fromkeys(attempts, INSUFFICIENT_ACCESS_RIGHTS)
    assert can_bind(corp_gateway, alice.dn, alice.password)["result"] == 0


def test_unknown_extended_operation_is_a_protocol_error(corp_gateway: GatewayProcess) -> None:
    with service_connection(corp_gateway) as conn:
        conn.extended("1.3.6.1.4.1.99999.1.2.3")
        assert conn.result["result"] == PROTOCOL_ERROR
        assert search_code(conn) == 0  # only that operation failed


def test_unknown_critical_control_is_refused(corp_gateway: GatewayProcess) -> None:
    with service_connection(corp_gateway) as conn:
        conn.search(PEOPLE, "(uid=alice)", controls=[("1.3.6.1.4.1.99999.7", True, None)])
        assert conn.result["result"] == UNAVAILABLE_CRITICAL_EXTENSION
        assert conn.entries == []
        # Not critical: ignored (RFC 4511 §4.1.11).
        conn.search(PEOPLE, "(uid=alice)", controls=[("1.3.6.1.4.1.99999.7", False, None)])
        assert conn.result["result"] == 0 and len(conn.entries) == 1


def test_unknown_critical_control_on_a_bind_is_refused(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    alice = slapd.users["alice"]
    with ldap3_connection(corp_gateway, alice.dn, alice.password) as conn:
        assert not conn.bind(controls=[("1.3.6.1.4.1.99999.7", True, None)])
        assert conn.result["result"] == UNAVAILABLE_CRITICAL_EXTENSION
        assert whoami_of(conn) == ""


def test_root_dse_is_returned_only_when_the_filter_matches(corp_gateway: GatewayProcess) -> None:
    # RFC 4511 §4.5.1.7: the filter applies to the root DSE like to any entry (RFC 4512 §5.1
    # reads it with (objectClass=*)); slapd returns nothing for this search.
    with ldap3_connection(corp_gateway) as conn:
        conn.search("", "(objectClass=nosuchclass)", ldap3.BASE, attributes=["1.1"])
        assert conn.result["result"] == 0
        assert conn.response == []


def test_empty_password_is_refused_and_never_reaches_slapd(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # ldap3 will not send a simple bind without a password, so the request is built from its
    # own ASN.1 types: a name and an empty password, an unauthenticated bind (RFC 4513 §5.1.2).
    alice = slapd.users["alice"]
    request = BindRequest()
    request["version"] = Version(3)
    request["name"] = alice.dn
    request["authentication"] = AuthenticationChoice().setComponentByName("simple", Simple(""))
    binds = slapd.count_binds(alice.dn)

    with ldap3_connection(corp_gateway) as conn:
        [response] = conn.post_send_single_response(conn.send("bindRequest", request, None))
        assert whoami_of(conn) == ""

    assert response["result"] == UNWILLING_TO_PERFORM
    assert slapd.count_binds(alice.dn) == binds
