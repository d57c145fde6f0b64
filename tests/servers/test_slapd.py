"""The slapd fixture against the real server: seed, ppolicy, memberof, lifecycle, log, TLS."""

from __future__ import annotations

import os
import re
import socket
import ssl
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from tests.servers import slapd as slapd_module
from tests.servers.seed import SeedUser
from tests.servers.slapd import (
    DEFAULT_LIMITS,
    PPOLICY_CONTROL,
    Slapd,
    SlapdError,
    close_quietly,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# PasswordPolicyResponseValue error codes (draft-behera-ldap-password-policy-10 §6.2).
PASSWORD_EXPIRED, ACCOUNT_LOCKED, CHANGE_AFTER_RESET = 0, 1, 2


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def connect(server: Slapd, dn: str = "", password: str = "") -> ldap3.Connection:
    return ldap3.Connection(
        ldap3.Server("127.0.0.1", port=server.port, get_info=ldap3.NONE),
        user=dn or None,
        password=password or None,
        receive_timeout=5,
    )


class BindOutcome(NamedTuple):
    result: int
    description: str
    ppolicy: bytes | None  # raw value of the ppolicy response control, if the server sent one


def bind(server: Slapd, dn: str, password: str) -> BindOutcome:
    """Simple bind requesting the ppolicy response control (non-critical)."""
    conn = connect(server, dn, password)
    try:
        conn.bind(controls=[(PPOLICY_CONTROL, False, None)])
        control = (conn.result.get("controls") or {}).get(PPOLICY_CONTROL)
        value = control["value"] if control else None
        return BindOutcome(conn.result["result"], conn.result["description"], value)
    finally:
        close_quietly(conn)


class PolicyResponse(NamedTuple):
    warning: tuple[int, int] | None  # (0 timeBeforeExpiration | 1 graceAuthNsRemaining, n)
    error: int | None


def decode_ppolicy(value: bytes) -> PolicyResponse:
    """Minimal BER decoder for PasswordPolicyResponseValue:

        SEQUENCE { warning [0] CHOICE { [0] INTEGER, [1] INTEGER } OPTIONAL,
                   error   [1] ENUMERATED OPTIONAL }

    Short-form lengths only: the whole value is a handful of bytes. Anything else fails
    the test loudly instead of decoding wrongly.
    """
    assert value[0] == 0x30 and value[1] < 0x80 and len(value) == value[1] + 2, value
    warning: tuple[int, int] | None = None
    error: int | None = None
    pos = 2
    while pos < len(value):
        tag, length = value[pos], value[pos + 1]
        content = value[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if tag == 0xA0:  # [0] constructed: the warning CHOICE
            assert content[0] in (0x80, 0x81) and content[1] == len(content) - 2, value
            warning = (content[0] & 0x1F, int.from_bytes(content[2:], "big"))
        elif tag == 0x81:  # [1] primitive: the error ENUMERATED
            error = int.from_bytes(content, "big")
        else:
            raise AssertionError(f"unexpected tag {tag:#x} in {value!r}")
    return PolicyResponse(warning, error)


def test_ppolicy_decoder_reads_the_spec_encodings() -> None:
    assert decode_ppolicy(b"\x30\x00") == PolicyResponse(None, None)
    assert decode_ppolicy(b"\x30\x03\x81\x01\x02") == PolicyResponse(None, CHANGE_AFTER_RESET)
    assert decode_ppolicy(b"\x30\x06\xa0\x04\x80\x02\x01\x2c") == PolicyResponse((0, 300), None)


# -- seed ----------------------------------------------------------------------------


def search_people(server: Slapd, filter_: str, attributes: list[str]) -> list[ldap3.Entry]:
    """Search ou=people as the read-only service account, as the gateway will."""
    conn = connect(server, server.service_dn, server.service_password)
    try:
        assert conn.bind(), conn.result
        conn.search(server.people_dn, filter_, ldap3.SUBTREE, attributes=attributes)
        return list(conn.entries)
    finally:
        close_quietly(conn)


def test_seed_users_are_searchable(slapd: Slapd) -> None:
    entries = search_people(
        slapd, "(objectClass=inetOrgPerson)", ["uid", "mail", "mobile", "telephoneNumber"]
    )
    found = {entry.uid.value: entry for entry in entries}

    # Other tests add their own uniquely named users to this shared server: the seed must be
    # there, and the out-of-scope seed user must not.
    assert {"alice", "bob", "carol", "dave", "frank"} <= set(found)
    assert "erin" not in found
    alice = found["alice"]
    assert alice.entry_dn == slapd.users["alice"].dn
    assert alice.mail.value == "alice@example.org"
    assert alice.mobile.value == slapd.users["alice"].attributes["mobile"][0]
    assert alice.telephoneNumber.value == slapd.users["alice"].attributes["telephoneNumber"][0]


def test_entry_uuid_is_returned_and_stable(slapd: Slapd) -> None:
    first = search_people(slapd, "(uid=alice)", ["entryUUID"])
    again = search_people(slapd, "(uid=alice)", ["entryUUID"])

    assert UUID.match(first[0].entryUUID.value)
    assert first[0].entryUUID.value == again[0].entryUUID.value


def test_alice_binds(slapd: Slapd) -> None:
    alice = slapd.users["alice"]

    outcome = bind(slapd, alice.dn, alice.password)

    assert outcome.result == 0, outcome
    assert outcome.ppolicy is not None and decode_ppolicy(outcome.ppolicy).error is None


def test_wrong_password_is_invalid_credentials(slapd: Slapd) -> None:
    assert bind(slapd, slapd.users["alice"].dn, "wrong").description == "invalidCredentials"


def test_bob_is_locked(slapd: Slapd) -> None:
    bob = slapd.users["bob"]

    outcome = bind(slapd, bob.dn, bob.password)

    # ppolicy answers a locked account exactly like a wrong password (no olcPPolicyUseLockout).
    assert outcome.description == "invalidCredentials"
    assert bob.attributes["pwdAccountLockedTime"] == ("000001010000Z",)


def test_carol_is_expired_but_slapd_lets_her_bind(slapd: Slapd) -> None:
    carol = slapd.users["carol"]
    entries = search_people(slapd, "(uid=carol)", ["shadowExpire"])

    assert entries[0].shadowExpire.value == "1"
    # slapd does not enforce shadowExpire: refusing her is idgate's job.
    assert bind(slapd, carol.dn, carol.password).result == 0


def test_dave_must_change_password(slapd: Slapd) -> None:
    dave = slapd.users["dave"]

    outcome = bind(slapd, dave.dn, dave.password)

    assert outcome.result == 0, outcome
    assert outcome.ppolicy is not None
    assert decode_ppolicy(outcome.ppolicy).error == CHANGE_AFTER_RESET


def test_erin_is_outside_people(slapd: Slapd) -> None:
    erin = slapd.users["erin"]
    conn = connect(slapd, slapd.service_dn, slapd.service_password)
    try:
        assert conn.bind(), conn.result
        conn.search(slapd.suffix, "(uid=erin)", attributes=["uid"])
        assert [entry.entry_dn for entry in conn.entries] == [erin.dn]
    finally:
        close_quietly(conn)

    assert search_people(slapd, "(uid=erin)", ["uid"]) == []
    assert erin.dn.endswith(f",{slapd.contractors_dn}")


def test_anonymous_clients_see_nothing(slapd: Slapd) -> None:
    conn = connect(slapd)
    try:
        conn.bind()
        conn.search(slapd.suffix, "(uid=alice)", attributes=["uid"])
        assert conn.entries == []
    finally:
        close_quietly(conn)


def test_service_account_cannot_read_passwords(slapd: Slapd) -> None:
    entries = search_people(slapd, "(uid=alice)", ["userPassword", "uid"])

    assert entries[0].uid.value == "alice"
    # ldap3 lists every requested attribute; the ACL leaves this one without values.
    assert entries[0].entry_attributes_as_dict["userPassword"] == []


def test_alice_has_member_of(slapd: Slapd) -> None:
    alice: SeedUser = slapd.users["alice"]
    entries = search_people(slapd, "(uid=alice)", ["memberOf"])

    expected = {f"cn={name},{slapd.groups_dn}" for name in alice.groups}
    assert expected == {
        "cn=staff,ou=groups,dc=example,dc=org",
        "cn=vpn-users,ou=groups,dc=example,dc=org",
    }
    assert {dn.lower() for dn in entries[0].memberOf.values} == expected


def test_member_of_follows_group_changes(slapd: Slapd) -> None:
    uid = unique()
    user_dn = slapd.add_user(uid)
    group_dn = slapd.add_group(unique("group"), [user_dn])

    def member_of() -> set[str]:
        values = search_people(slapd, f"(uid={uid})", ["memberOf"])[0].memberOf.values
        return {value.lower() for value in values}

    assert member_of() == {group_dn.lower()}
    slapd.delete(group_dn)
    assert member_of() == set()
    slapd.delete(user_dn)


# -- helpers and the operation log ----------------------------------------------------


def test_helpers_add_modify_rename_delete(slapd: Slapd) -> None:
    uid = unique()
    dn = slapd.add_user(uid, mobile="+1 202 555 0199", userPassword="pw-1")

    slapd.modify(dn, {"mobile": "+44 20 7946 0000", "telephoneNumber": ["+1 202 555 0100"]})
    entry = search_people(slapd, f"(uid={uid})", ["mobile", "telephoneNumber"])[0]
    assert (entry.mobile.value, entry.telephoneNumber.value) == (
        "+44 20 7946 0000",
        "+1 202 555 0100",
    )
    slapd.modify(dn, {"telephoneNumber": None})
    assert (
        search_people(slapd, f"(uid={uid})", ["telephoneNumber"])[0].telephoneNumber.value is None
    )

    new_uid = unique()
    new_dn = slapd.rename(dn, f"uid={new_uid}")
    assert new_dn == f"uid={new_uid},{slapd.people_dn}"
    assert search_people(slapd, f"(uid={uid})", ["uid"]) == []
    assert search_people(slapd, f"(uid={new_uid})", ["uid"])[0].entry_dn == new_dn

    moved_dn = slapd.rename(new_dn, f"uid={new_uid}", new_superior=slapd.contractors_dn)
    assert search_people(slapd, f"(uid={new_uid})", ["uid"]) == []

    slapd.delete(moved_dn)
    with pytest.raises(SlapdError, match="noSuchObject"):
        slapd.delete(moved_dn)


def test_admin_password_reset_sets_pwd_reset(slapd: Slapd) -> None:
    # pwdMustChange: a password set by someone else than the user (here the rootDN) must
    # be changed at next bind. Pass {"pwdReset": None} along to set one without that.
    dn = slapd.add_user(unique(), userPassword="first")
    assert decode_ppolicy(bind(slapd, dn, "first").ppolicy or b"").error is None

    slapd.modify(dn, {"userPassword": "second"})
    assert decode_ppolicy(bind(slapd, dn, "second").ppolicy or b"").error == CHANGE_AFTER_RESET

    slapd.modify(dn, {"userPassword": "third", "pwdReset": None})
    assert decode_ppolicy(bind(slapd, dn, "third").ppolicy or b"").error is None
    slapd.delete(dn)


def test_count_operations_counts_a_search(slapd: Slapd) -> None:
    uid = unique()
    searches = slapd.count_operations("SRCH", contains=f"(uid={uid})")
    all_searches = slapd.count_operations("SRCH")
    service_binds = slapd.count_binds(slapd.service_dn)

    search_people(slapd, f"(uid={uid})", ["uid"])

    assert slapd.count_operations("SRCH", contains=f"(uid={uid})") == searches + 1
    assert slapd.count_operations("SRCH") == all_searches + 1
    assert slapd.count_binds(slapd.service_dn.upper()) == service_binds + 1


def test_count_binds_counts_failed_binds(slapd: Slapd) -> None:
    dn = f"uid={unique()},{slapd.people_dn}"

    bind(slapd, dn, "nobody-has-this")
    bind(slapd, dn, "nobody-has-this")

    assert slapd.count_binds(dn) == 2


def test_config_is_reachable_as_root(slapd: Slapd) -> None:
    with slapd.config_connection() as conn:
        conn.search(
            "olcDatabase={1}mdb,cn=config",
            "(objectClass=olcPPolicyConfig)",
            attributes=["olcPPolicyDefault"],
        )
        assert [e.olcPPolicyDefault.value for e in conn.entries] == [slapd.policy_dn]


def test_plain_search_is_capped_paged_search_is_not(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(seed_users=False)
    with server.admin_connection() as admin:
        for i in range(501):
            admin.add(f"uid=bulk{i},{server.people_dn}", ["inetOrgPerson"], {"cn": "b", "sn": "b"})
            assert admin.result["result"] == 0, admin.result
    conn = connect(server, server.service_dn, server.service_password)
    try:
        assert conn.bind(), conn.result
        conn.search(server.people_dn, "(objectClass=inetOrgPerson)", attributes=["uid"])
        assert conn.result["description"] == "sizeLimitExceeded"
        paged = conn.extend.standard.paged_search(
            server.people_dn, "(objectClass=inetOrgPerson)", paged_size=200, generator=False
        )
        assert len(paged) == 501
    finally:
        close_quietly(conn)


# -- a hostile directory (own servers) ---------------------------------------------------

PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696


class Page(NamedTuple):
    description: str
    message: str
    entries: int
    cookie: bytes | None  # None: the answer carried no paged-results control


def read_page(conn: ldap3.Connection, base: str, size: int, cookie: bytes | None = None) -> Page:
    """One page of a critical paged search for the users under `base`, as a bulk sync asks."""
    conn.search(
        base,
        "(objectClass=inetOrgPerson)",
        attributes=["1.1"],
        paged_size=size,
        paged_criticality=True,
        paged_cookie=cookie,
    )
    control = (conn.result.get("controls") or {}).get(PAGED_RESULTS)
    return Page(
        conn.result["description"],
        conn.result["message"],
        sum(1 for item in conn.response or [] if item["type"] == "searchResEntry"),
        control["value"]["cookie"] if control else None,
    )


def service_connection(server: Slapd) -> ldap3.Connection:
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=server.port, get_info=ldap3.NONE),
        user=server.service_dn,
        password=server.service_password,
        auto_referrals=False,
        receive_timeout=10,
    )
    assert conn.bind(), conn.result
    return conn


def test_limits_at_start_and_at_run_time(slapd_factory: Callable[..., Slapd]) -> None:
    # Without size.prtotal a paged search stops at size.hard entries, on the page that
    # crosses it, with what fits and no paged-results control.
    server = slapd_factory(limits=["users size.soft=3 size.hard=3"])
    people = server.people_dn  # 5 seed users
    conn = service_connection(server)
    try:
        first = read_page(conn, people, 2)
        assert (first.description, first.entries) == ("success", 2) and first.cookie
        assert read_page(conn, people, 2, first.cookie) == Page("sizeLimitExceeded", "", 1, None)

        server.set_limits(["users size.prtotal=unlimited size.unchecked=3"])
        assert read_page(conn, people, 2) == Page("adminLimitExceeded", "", 0, None)
        server.set_limits(["users size.prtotal=disabled"])
        assert read_page(conn, people, 2) == Page(
            "adminLimitExceeded", "pagedResults control not allowed", 0, None
        )
        with pytest.raises(SlapdError, match="olcLimits"):
            server.set_limits(["users size.pr=disabled"])  # not slapd syntax

        server.set_limits([], size_limit=2)  # no clause: olcSizeLimit for everyone
        assert read_page(conn, people, 5) == Page("sizeLimitExceeded", "", 2, None)
        server.set_limits()
        assert read_page(conn, people, 5) == Page("success", "", 5, b"")
        assert server.limits == DEFAULT_LIMITS
    finally:
        close_quietly(conn)


def test_a_delay_makes_the_time_limit_strike(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(limits=["users time=1 size.prtotal=unlimited"])
    conn = service_connection(server)
    try:
        first = read_page(conn, server.people_dn, 2)
        assert first.description == "success" and first.cookie

        # slapd counts whole seconds from the request's arrival: 2 s is always past 1.
        server.set_delay(2)
        assert read_page(conn, server.people_dn, 2, first.cookie) == Page(
            "timeLimitExceeded", "", 0, None
        )
        server.set_delay(0)
        assert read_page(conn, server.people_dn, 5).description == "success"
    finally:
        close_quietly(conn)


def test_make_referral(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory()
    url = server.make_referral(server.contractors_dn)
    assert url == f"ldap://elsewhere.example/{server.contractors_dn}"
    conn = service_connection(server)
    try:
        assert read_page(conn, server.contractors_dn, 5) == Page("referral", "", 0, None)
        assert conn.result["referrals"] == [f"{url}??sub"]
        assert conn.result["dn"] == server.contractors_dn  # matchedDN

        # Above it: success, and the referral as a continuation reference (erin is gone).
        page = read_page(conn, server.suffix, 5)
        assert (page.description, page.entries, page.cookie) == ("success", 5, b"")
        assert [item["uri"] for item in conn.response if item["type"] == "searchResRef"] == [
            [f"{url}??sub"]
        ]
    finally:
        close_quietly(conn)


# -- lifecycle (own servers) ------------------------------------------------------------


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stop_and_start_keep_data_and_url(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(seed_users=False)
    url = server.url
    dn = server.add_user("kept", userPassword="kept-pw")

    server.stop()
    assert not server.running
    assert not port_is_open(server.port)
    with pytest.raises(LDAPException, match="refused"):
        bind(server, server.root_dn, server.root_password)

    server.start()
    assert server.url == url
    assert bind(server, dn, "kept-pw").result == 0


def test_kill_and_restart(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(seed_users=False)
    dn = server.add_user("survivor")
    pid = server.pid
    assert pid is not None

    server.kill()
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    admin_binds = server.count_binds(server.root_dn)
    server.start()
    with server.admin_connection() as conn:
        assert conn.search(dn, "(objectClass=*)", ldap3.BASE)
    # Connection numbers start again at 1000 after a restart: still counted apart.
    assert server.count_binds(server.root_dn) == admin_binds + 1


def test_close_leaves_no_process_and_no_directory(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(seed_users=False)
    pid, workdir = server.pid, server.workdir
    assert pid is not None and workdir.exists()

    server.close()

    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not workdir.exists()


def test_runtime_config_change(slapd_factory: Callable[..., Slapd]) -> None:
    # With olcPPolicyUseLockout the control tells a locked account apart (still err=49).
    server = slapd_factory()
    bob = server.users["bob"]
    with server.config_connection() as conn:
        conn.modify(
            "olcOverlay={1}ppolicy,olcDatabase={1}mdb,cn=config",
            {"olcPPolicyUseLockout": [(ldap3.MODIFY_REPLACE, ["TRUE"])]},
        )
        assert conn.result["result"] == 0, conn.result

    outcome = bind(server, bob.dn, bob.password)

    assert outcome.description == "invalidCredentials"
    assert decode_ppolicy(outcome.ppolicy or b"").error == ACCOUNT_LOCKED


def test_start_retries_when_the_port_is_taken(
    slapd_factory: Callable[..., Slapd], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        # Bound, not listening: slapd's bind() fails with EADDRINUSE while the readiness
        # probe gets a plain refusal instead of a silent listener.
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        real_free_port = slapd_module._free_port
        ports: Iterator[int] = iter([taken])
        monkeypatch.setattr(
            slapd_module, "_free_port", lambda avoid=0: next(ports, None) or real_free_port(avoid)
        )

        server = slapd_factory(seed_users=False)

        assert server.port != taken
        assert "Address already in use" in server.log_text()
        assert bind(server, server.root_dn, server.root_password).result == 0


def test_start_failure_reports_the_log_tail(slapd_factory: Callable[..., Slapd]) -> None:
    with pytest.raises(SlapdError, match=r"(?s)exited with status.*unrecognized log level"):
        slapd_factory(seed_users=False, debug_level="no-such-level")


@pytest.mark.parametrize("suffix", ["not a dn", "o=example"])
def test_invalid_suffix_is_refused(suffix: str) -> None:
    with pytest.raises(SlapdError, match="invalid suffix"):
        Slapd(suffix=suffix)


def test_another_suffix(slapd_factory: Callable[..., Slapd]) -> None:
    server = slapd_factory(suffix="dc=corp,dc=test")
    alice = server.users["alice"]

    assert alice.dn == "uid=alice,ou=people,dc=corp,dc=test"
    assert bind(server, alice.dn, alice.password).result == 0


# -- TLS ------------------------------------------------------------------------------


def tls_connection(url: str, ca_file: str | None) -> ldap3.Connection:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
    return ldap3.Connection(ldap3.Server(url, tls=tls, get_info=ldap3.NONE), receive_timeout=5)


def test_ldaps_verifies_with_the_ca(slapd_tls: Slapd) -> None:
    alice = slapd_tls.users["alice"]
    conn = tls_connection(slapd_tls.ldaps_url, str(slapd_tls.ca_file))
    try:
        assert conn.rebind(alice.dn, alice.password), conn.result
        assert conn.extend.standard.who_am_i() == f"dn:{alice.dn}"
    finally:
        close_quietly(conn)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_start_tls_verifies_with_the_ca(slapd_tls: Slapd, host: str) -> None:
    alice = slapd_tls.users["alice"]
    conn = tls_connection(f"ldap://{host}:{slapd_tls.port}", str(slapd_tls.ca_file))
    try:
        conn.open()
        assert conn.start_tls(), conn.result
        assert conn.rebind(alice.dn, alice.password), conn.result
    finally:
        close_quietly(conn)


def test_ldaps_without_the_ca_fails_verification(slapd_tls: Slapd) -> None:
    conn = tls_connection(slapd_tls.ldaps_url, None)
    try:
        with pytest.raises(LDAPException, match=r"(?i)certificate verify failed"):
            conn.open()
    finally:
        close_quietly(conn)


def test_start_tls_without_the_ca_fails_verification(slapd_tls: Slapd) -> None:
    conn = tls_connection(slapd_tls.url, None)
    try:
        conn.open()
        with pytest.raises(LDAPException, match=r"(?i)certificate verify failed"):
            conn.start_tls()
    finally:
        close_quietly(conn)


def test_tls_is_not_offered_without_tls(slapd: Slapd) -> None:
    conn = tls_connection(slapd.url, None)
    try:
        conn.open()
        with pytest.raises(LDAPException):
            conn.start_tls()
    finally:
        close_quietly(conn)
    with pytest.raises(SlapdError):
        _ = slapd.ldaps_url
