"""FreeRADIUS (rlm_ldap) pointed at the gateway instead of the directory (SPEC §6): it searches
as the gateway's service account, then binds as the user, and must get the answers the
directory's own users deserve."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.gateway.realgw import unique
from tests.ldapproxy.clients import PEOPLE, add_person, stored_user
from tests.ldapproxy.conftest import WINDOW_SECONDS
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.freeradius import AD_USER_FILTER, FreeRadius, RadiusOutcome
from tests.servers.samba import SambaAD
from tests.servers.slapd import Slapd

ACCEPT, REJECT = RadiusOutcome.ACCEPT, RadiusOutcome.REJECT


def radius_for(
    make: Callable[..., FreeRadius], gateway: GatewayProcess, base: str, **options
) -> FreeRadius:
    return make(gateway.url, SERVICE_DN, SERVICE_PASSWORD, base, **options)


def answers(radius: FreeRadius, *attempts: tuple[str, str]) -> list[RadiusOutcome]:
    return [radius.authenticate(name, password).outcome for name, password in attempts]


def test_slapd_users_through_the_gateway(
    freeradius_factory: Callable[..., FreeRadius], corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    radius = radius_for(freeradius_factory, corp_gateway, PEOPLE)
    users = slapd.users

    got = answers(
        radius,
        ("alice", users["alice"].password),
        ("alice", "not-" + users["alice"].password),
        ("bob", users["bob"].password),  # disabled (ppolicy lock)
        ("carol", users["carol"].password),  # expired (shadowExpire)
        ("erin", users["erin"].password),  # out of scope
        (unique("nobody"), "whatever"),
        ("frank", users["frank"].password),  # never bound before: found by exact lookup
    )

    assert got == [ACCEPT, REJECT, REJECT, REJECT, REJECT, REJECT, ACCEPT], radius.log_tail()


def test_locked_upstream_after_first_login_is_rejected(
    freeradius_factory: Callable[..., FreeRadius], corp_gateway: GatewayProcess, slapd: Slapd
) -> None:
    radius = radius_for(freeradius_factory, corp_gateway, PEOPLE)
    person = add_person(slapd, "radlock")
    first = radius.authenticate(person.uid, person.password).outcome

    slapd.modify(person.dn, {"pwdAccountLockedTime": "000001010000Z"})
    second = radius.authenticate(person.uid, person.password).outcome

    assert (first, second) == (ACCEPT, REJECT)


def test_disabled_upstream_after_first_login_is_rejected_past_the_window(
    freeradius_factory: Callable[..., FreeRadius], window_gateway: GatewayProcess, slapd: Slapd
) -> None:
    # slapd ignores employeeType: only the gateway's JIT read can refuse this user.
    radius = radius_for(freeradius_factory, window_gateway, PEOPLE)
    person = add_person(slapd, "radoff")
    first = radius.authenticate(person.uid, person.password).outcome
    # The window ends WINDOW_SECONDS after the sync the gateway stored, on this machine's clock.
    view = stored_user(window_gateway, "corp", person.uid)
    assert view is not None and view.last_sync_at is not None, radius.log_tail()
    closes = view.last_sync_at + timedelta(seconds=WINDOW_SECONDS)

    slapd.modify(person.dn, {"employeeType": "disabled"})
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()))  # to the stored instant
    after = radius.authenticate(person.uid, person.password).outcome

    assert (first, after) == (ACCEPT, REJECT), radius.log_tail()


def test_ad_users_through_the_gateway(
    freeradius_factory: Callable[..., FreeRadius], ad_gateway: GatewayProcess, samba_ad: SambaAD
) -> None:
    radius = radius_for(
        freeradius_factory, ad_gateway, samba_ad.people_dn, user_filter=AD_USER_FILTER
    )
    users = samba_ad.users

    got = answers(
        radius,
        ("alice", users["alice"].password),
        ("alice", "Wr0ng!password"),
        ("bob", users["bob"].password),  # disabled (userAccountControl)
        ("carol", users["carol"].password),  # expired (accountExpires)
        ("frank", users["frank"].password),
    )

    assert got == [ACCEPT, REJECT, REJECT, REJECT, ACCEPT], radius.log_tail()
