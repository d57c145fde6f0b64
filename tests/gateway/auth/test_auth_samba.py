"""Authentication and JIT sync end to end against a real Samba AD DC (SPEC §4.3, §6): the real
runtime of `gateway.runtime.main.build`, with the `ad` source's built-in status mapping.

SQLite only: the store's behaviour on both backends is covered by test_auth_slapd.py, and
these scenarios are about what Active Directory answers.
"""

import uuid

import pytest

from gateway.auth.binds import AuthReason
from gateway.engine.types import DisabledBy, Reason, Status
from gateway.runtime.main import Runtime
from gateway.users.records import PhoneView
from ldapproxy.codes import Code, bind_result
from tests.gateway.realgw import (
    Gateways,
    authenticate,
    bind_ok,
    gateway_config,
    object_guid,
    record_by_id,
    records,
    samba_source,
    unique,
)
from tests.servers.samba import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT, SambaAD

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def ad(gateways: Gateways, samba_ad: SambaAD, store_url: str) -> Runtime:
    return gateways(gateway_config(store_url, samba_source(samba_ad)))


def test_alice_binds_by_every_name_form_into_one_record(ad: Runtime, samba_ad: SambaAD) -> None:
    alice = samba_ad.users["alice"]

    views = [
        bind_ok(ad, name, alice.password)
        for name in ("alice", "Alice@IDGATE.test", "idgate\\ALICE", alice.dn.upper())
    ]

    assert {view.id for view in views} == {views[0].id}
    [view] = records(ad)
    assert view.external_id == str(uuid.UUID(view.external_id))  # canonical UUID text
    assert view.external_id == object_guid(samba_ad, alice.dn)
    assert view.user_name == "alice"
    assert view.dn is not None and view.dn.lower() == alice.dn.lower()
    assert view.state.status is Status.ACTIVE
    assert view.sms_phones == (PhoneView("+1 202 555 0101", manual=False),)
    assert {group.lower() for group in view.groups} == {dn.lower() for dn in alice.groups}


def test_frank_binds_by_his_upn(ad: Runtime, samba_ad: SambaAD) -> None:
    frank = samba_ad.users["frank"]
    assert frank.upn == "frank.jones@idgate.test"

    view = bind_ok(ad, frank.upn, frank.password)

    assert view.user_name == "frank"
    assert view.external_id == object_guid(samba_ad, frank.dn)
    # The stored UPN now finds him without the directory's help for the name.
    assert bind_ok(ad, "FRANK.JONES@idgate.test", frank.password).id == view.id


def test_disabled_user_is_refused_and_never_added(ad: Runtime, samba_ad: SambaAD) -> None:
    bob = samba_ad.users["bob"]  # userAccountControl 0x202

    outcome = authenticate(ad, "bob", bob.password)

    assert outcome.reason is AuthReason.ACCOUNT_DISABLED
    assert not outcome.ok
    assert records(ad) == []


def test_user_disabled_after_a_sync_is_disabled_by_source(ad: Runtime, samba_ad: SambaAD) -> None:
    user = samba_ad.add_user(unique("adoff"))
    first = bind_ok(ad, user.sam, user.password)

    samba_ad.modify(user.dn, {"userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)})
    outcome = authenticate(ad, user.sam, user.password)

    assert outcome.reason is AuthReason.ACCOUNT_DISABLED
    view = record_by_id(ad, first.id)
    assert view.state.status is Status.DISABLED
    assert view.state.disabled_by is DisabledBy.SOURCE
    assert view.state.reason is Reason.SOURCE_DISABLED


def test_expired_user_is_refused(ad: Runtime, samba_ad: SambaAD) -> None:
    carol = samba_ad.users["carol"]  # accountExpires 2020-01-01

    outcome = authenticate(ad, "carol", carol.password)

    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED
    assert not outcome.ok
    assert records(ad) == []


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("bob", AuthReason.ACCOUNT_DISABLED, "account disabled"),  # data 533
        ("carol", AuthReason.ACCOUNT_EXPIRED, "account expired"),  # data 701
    ],
)
def test_disabled_or_expired_says_so_only_to_the_right_password(
    ad: Runtime, samba_ad: SambaAD, name: str, reason: AuthReason, message: str
) -> None:
    """AD answers 533 and 701 only after checking the password; where the engine's own
    status agrees, the refusal says why (SPEC §6), and a wrong password learns nothing."""
    user = samba_ad.users[name]

    right = authenticate(ad, name, user.password)
    wrong = authenticate(ad, name, "not-" + user.password)

    assert (right.reason, right.password_verified) == (reason, True)
    assert bind_result(right) == (Code.INVALID_CREDENTIALS, message)
    assert (wrong.reason, wrong.password_verified) == (AuthReason.INVALID_CREDENTIALS, False)
    assert bind_result(wrong) == (Code.INVALID_CREDENTIALS, "invalid credentials")


def test_a_user_disabled_since_the_last_sync_is_told_disabled(
    ad: Runtime, samba_ad: SambaAD
) -> None:
    user = samba_ad.add_user(unique("ad533"))
    bind_ok(ad, user.sam, user.password)
    samba_ad.modify(user.dn, {"userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE)})

    outcome = authenticate(ad, user.sam, user.password)

    assert bind_result(outcome) == (Code.INVALID_CREDENTIALS, "account disabled")


def test_password_must_change_is_not_a_success(ad: Runtime, samba_ad: SambaAD) -> None:
    dave = samba_ad.users["dave"]  # pwdLastSet 0

    outcome = authenticate(ad, "dave", dave.password)

    assert outcome.reason is AuthReason.PASSWORD_MUST_CHANGE
    assert outcome.password_verified and not outcome.ok


def test_out_of_scope_user_is_refused_and_never_added(ad: Runtime, samba_ad: SambaAD) -> None:
    erin = samba_ad.users["erin"]  # OU=Contractors
    binds = samba_ad.count_binds(account="erin")

    outcomes = [authenticate(ad, name, erin.password) for name in ("erin", erin.upn, erin.dn)]

    assert {o.reason for o in outcomes} == {AuthReason.INVALID_CREDENTIALS}
    assert not any(o.password_verified for o in outcomes)
    assert samba_ad.count_binds(account="erin") == binds
    assert records(ad) == []


def test_ldaps_with_the_samba_ca_and_server_name(
    gateways: Gateways, samba_ad: SambaAD, store_url: str
) -> None:
    source = samba_source(samba_ad, ldaps=True)
    assert source["urls"] == [samba_ad.ldaps_url]
    runtime = gateways(gateway_config(store_url, source))
    alice = samba_ad.users["alice"]

    view = bind_ok(runtime, "IDGATE\\alice", alice.password)

    assert view.external_id == object_guid(samba_ad, alice.dn)
