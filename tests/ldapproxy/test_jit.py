"""Just-in-time sync seen through the front (SPEC §5.1, §6): a user the gateway never saw is
found by an exact search, and a user disabled upstream is refused once the JIT window lets the
gateway read them again."""

import time
from datetime import UTC, datetime, timedelta

import ldap3

from tests.gateway.realgw import unique
from tests.ldapproxy.clients import (
    PEOPLE,
    add_person,
    can_bind,
    service_connection,
    stored_user,
)
from tests.ldapproxy.conftest import WINDOW_SECONDS
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.samba import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT, SambaAD
from tests.servers.slapd import Slapd

INVALID_CREDENTIALS = 49


def status_of(gateway: GatewayProcess, dn: str) -> dict[str, list[str]]:
    """The entry's idgate operational attributes, read as the service account."""
    with service_connection(gateway) as conn:
        assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["+"]), conn.result
        [entry] = conn.response
        return {k: list(v) for k, v in entry["attributes"].items() if k.startswith("idgate")}


def test_exact_search_finds_a_user_never_seen(corp_gateway: GatewayProcess, slapd: Slapd) -> None:
    person = add_person(slapd, "newcomer")
    other = add_person(slapd, "newcomer")
    assert stored_user(corp_gateway, "corp", person.uid) is None
    searches = slapd.count_operations("SRCH", contains=f"(uid={person.uid})")

    with service_connection(corp_gateway) as conn:
        conn.search(PEOPLE, f"(uid={person.uid})", attributes=["uid", "mail"])
        found = [(e["dn"], e["attributes"]["uid"]) for e in conn.response]
        # The RADIUS form, an AND with an objectClass, looks up too.
        conn.search(PEOPLE, f"(&(objectClass=inetOrgPerson)(uid={other.uid}))", attributes=["uid"])
        found_in_and = [e["dn"] for e in conn.response]

    assert found == [(person.dn, [person.uid])]
    assert found_in_and == [other.dn]
    assert slapd.count_operations("SRCH", contains=f"(uid={person.uid})") > searches
    view = stored_user(corp_gateway, "corp", person.uid)
    assert view is not None and view.dn == person.dn


def test_a_wildcard_search_never_asks_the_directory(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    prefix = unique("unseen")
    person = add_person(slapd, prefix)
    searches = slapd.count_operations("SRCH")

    with service_connection(corp_gateway) as conn:
        conn.search(PEOPLE, f"(uid={prefix}*)", attributes=["uid"])
        found = list(conn.response)
        conn.search(PEOPLE, f"(|(uid={person.uid})(mail=nobody@example.org))", attributes=["uid"])
        found += list(conn.response)

    assert found == []
    assert slapd.count_operations("SRCH") == searches
    assert stored_user(corp_gateway, "corp", person.uid) is None


def test_an_unknown_name_is_looked_up_and_not_found(corp_gateway: GatewayProcess) -> None:
    with service_connection(corp_gateway) as conn:
        conn.search(PEOPLE, f"(uid={unique('nobody')})", attributes=["uid"])
        assert conn.result["result"] == 0
        assert conn.response == []


def test_exact_search_finds_an_ad_user_never_seen(
    ad_gateway: GatewayProcess, samba_ad: SambaAD
) -> None:
    user = samba_ad.add_user(unique("adnew"))

    with service_connection(ad_gateway) as conn:
        conn.search(samba_ad.people_dn, f"(sAMAccountName={user.sam})", attributes=["*"])
        [entry] = conn.response

    assert entry["dn"].lower() == user.dn.lower()
    assert entry["attributes"]["sAMAccountName"] == [user.sam]
    assert "user" in entry["attributes"]["objectClass"]


def test_locked_upstream_after_first_login_is_refused(
    corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # corp_gateway reads on every bind (interval 0); the lock is slapd's ppolicy one.
    person = add_person(slapd, "locked")
    assert can_bind(corp_gateway, person.uid, person.password)["result"] == 0
    assert status_of(corp_gateway, person.dn)["idgateStatus"] == ["active"]

    slapd.modify(person.dn, {"pwdAccountLockedTime": "000001010000Z"})
    refused = can_bind(corp_gateway, person.uid, person.password)

    assert refused["result"] == INVALID_CREDENTIALS
    assert refused["message"] == "invalid credentials"  # slapd verified nothing
    assert status_of(corp_gateway, person.dn) == {
        "idgateStatus": ["disabled"],
        "idgateStatusReason": ["source_disabled"],
        "idgateSource": ["corp"],
    }


def window_closes(gateway: GatewayProcess, uid: str) -> datetime:
    """When the JIT window of a user ends: the last sync the gateway stored, plus the window.
    The gateway runs on this machine's clock, so this is the instant it reads the user again."""
    view = stored_user(gateway, "corp", uid)
    assert view is not None and view.last_sync_at is not None, f"{uid} was never synced"
    return view.last_sync_at + timedelta(seconds=WINDOW_SECONDS)


def test_disabled_upstream_is_refused_once_the_window_has_passed(
    window_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # "Within the window" needs the second bind answered less than WINDOW_SECONDS after the
    # sync; a machine too busy for that gets another user rather than a wrong verdict.
    for _ in range(3):
        person = add_person(slapd, "windowed")
        assert can_bind(window_gateway, person.dn, person.password)["result"] == 0
        closes = window_closes(window_gateway, person.uid)
        slapd.modify(person.dn, {"employeeType": "disabled"})
        within = can_bind(window_gateway, person.dn, person.password)
        if datetime.now(UTC) < closes:
            break
    else:
        raise AssertionError(f"three binds in a row came later than {WINDOW_SECONDS} s after sync")
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()))  # to the stored instant
    after = can_bind(window_gateway, person.dn, person.password)
    wrong = can_bind(window_gateway, person.dn, "not-" + person.password)

    # Inside the window the record is not read again (SPEC §5.1: one read per window).
    assert within["result"] == 0
    assert (after["result"], after["message"]) == (INVALID_CREDENTIALS, "account disabled")
    assert (wrong["result"], wrong["message"]) == (INVALID_CREDENTIALS, "invalid credentials")
    assert status_of(window_gateway, person.dn)["idgateStatus"] == ["disabled"]


def test_ad_user_disabled_after_first_login_is_refused(
    ad_gateway: GatewayProcess, samba_ad: SambaAD
) -> None:
    user = samba_ad.add_user(unique("adoff"))
    assert can_bind(ad_gateway, user.upn, user.password)["result"] == 0

    samba_ad.modify(user.dn, {"userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)})
    refused = can_bind(ad_gateway, user.upn, user.password)

    assert refused["result"] == INVALID_CREDENTIALS
    assert status_of(ad_gateway, user.dn)["idgateStatus"] == ["disabled"]
