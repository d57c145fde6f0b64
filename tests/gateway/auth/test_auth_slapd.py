"""Authentication and JIT sync end to end (SPEC §4 to §6): the real runtime of
`gateway.runtime.main.build` against a real OpenLDAP slapd, on SQLite and PostgreSQL.

Seed users of the shared `slapd` are only bound as; scenarios that change a user upstream add
their own uniquely named one, or use their own server (`slapd_factory`). The JIT interval is 0
unless a scenario says otherwise, so every bind reads the user.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gateway.auth.binds import AuthReason
from gateway.engine.phones import PhoneKind
from gateway.engine.plan import Outcome
from gateway.engine.types import DisabledBy, Reason, Role, Status
from gateway.runtime.main import Runtime
from gateway.users.records import PhoneView, UserView
from gateway.users.service import Actor
from tests.gateway.realgw import (
    Gateways,
    SilentServer,
    authenticate,
    bind_ok,
    entry_uuid,
    gateway_config,
    record,
    record_by_id,
    records,
    slapd_source,
    sync_claim,
    unique,
)
from tests.servers.slapd import Slapd

SUPER = Actor("ops", Role.SUPER_ADMIN)
GROUPS = "ou=groups,dc=example,dc=org"


@dataclass(frozen=True)
class Person:
    """A user this test added to a directory."""

    uid: str
    dn: str
    password: str


def add_person(server: Slapd, prefix: str, **attributes: object) -> Person:
    uid = unique(prefix)
    password = f"{uid}-pw"
    dn = server.add_user(uid, userPassword=password, **attributes)
    return Person(uid, dn, password)


def user_binds(server: Slapd) -> int:
    """Binds that reached slapd, the service account's excepted."""
    return server.count_binds() - server.count_binds(server.service_dn)


@pytest.fixture
def make_corp(gateways: Gateways, slapd: Slapd, store_url: str) -> Callable[..., Runtime]:
    """`make(urls=None, **sync)`: a runtime of the `corp` source (default: the shared slapd)."""

    def make(urls: list[str] | None = None, **sync: object) -> Runtime:
        source = slapd_source(urls or [slapd.url])
        return gateways(gateway_config(store_url, source, **sync))

    return make


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def corp(make_corp: Callable[..., Runtime]) -> Runtime:
    return make_corp()


def assert_disabled_by_source(view: UserView, reason: Reason) -> None:
    assert view.state.status is Status.DISABLED
    assert view.state.disabled_by is DisabledBy.SOURCE
    assert view.state.reason is reason


# -- active users --------------------------------------------------------------------------------


def test_active_user_binds_by_name_and_dn_and_is_added(corp: Runtime, slapd: Slapd) -> None:
    alice = slapd.users["alice"]
    started = datetime.now(UTC)

    by_name = authenticate(corp, "ALICE", alice.password)
    by_dn = authenticate(corp, "UID=Alice , OU=People,  DC=Example,dc=ORG", alice.password)

    assert by_name.ok and by_name.password_verified
    assert by_dn.ok and by_dn.password_verified
    assert by_dn.user_id == by_name.user_id
    assert by_name.dn is not None and by_name.dn.lower() == alice.dn.lower()
    [view] = records(corp)
    assert view.id == by_name.user_id
    assert view.external_id == entry_uuid(slapd, alice.dn)
    assert view.user_name == "alice"
    assert view.state.status is Status.ACTIVE
    assert view.sms_phones == (PhoneView("+1 202 555 0101", manual=False),)
    assert view.voice_phones == (PhoneView("+1 202 555 0111", manual=False),)
    assert {group.lower() for group in view.groups} == {
        f"cn=staff,{GROUPS}",
        f"cn=vpn-users,{GROUPS}",
    }
    assert [email["value"] for email in view.emails] == ["alice@example.org"]
    assert view.last_sync_at is not None and view.last_sync_at >= started

    corp.recorder.flush()

    last_auth = record_by_id(corp, view.id).last_auth_at
    assert last_auth is not None and last_auth >= started


def test_wrong_password_and_unknown_user_get_the_same_answer(corp: Runtime, slapd: Slapd) -> None:
    before = user_binds(slapd)
    wrong = authenticate(corp, "alice", "not-alice-secret")
    after_wrong = user_binds(slapd)
    unknown = authenticate(corp, unique("nobody"), "not-alice-secret")
    after_unknown = user_binds(slapd)

    assert wrong.reason is unknown.reason is AuthReason.INVALID_CREDENTIALS
    assert not wrong.password_verified and not unknown.password_verified
    # The same path upstream: one user bind each (the unknown name binds a decoy DN).
    assert after_wrong - before == after_unknown - after_wrong == 1
    # The JIT sync ran whatever the password (SPEC §6): alice is in the store, nobody else.
    assert [view.user_name for view in records(corp)] == ["alice"]


def test_empty_password_is_refused_without_reaching_slapd(corp: Runtime, slapd: Slapd) -> None:
    binds, searches = slapd.count_binds(), slapd.count_operations("SRCH")

    outcome = authenticate(corp, "alice", "")

    assert outcome.reason is AuthReason.INVALID_CREDENTIALS
    assert not outcome.password_verified
    assert (slapd.count_binds(), slapd.count_operations("SRCH")) == (binds, searches)
    assert records(corp) == []


# -- status from the directory -------------------------------------------------------------------


def test_locked_upstream_disables_the_record(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "locked")
    first = bind_ok(corp, person.uid, person.password)

    slapd.modify(person.dn, {"pwdAccountLockedTime": "000001010000Z"})
    outcome = authenticate(corp, person.uid, person.password)

    assert not outcome.ok
    # ppolicy answers a locked account with a plain invalidCredentials whatever the password
    # (no accountLocked without olcPPolicyUseLockout): nothing verified, so nothing more said.
    assert outcome.reason is AuthReason.INVALID_CREDENTIALS
    assert not outcome.password_verified
    view = record_by_id(corp, first.id)
    assert_disabled_by_source(view, Reason.SOURCE_DISABLED)
    assert view.external_id == first.external_id

    slapd.modify(person.dn, {"pwdAccountLockedTime": None})
    again = bind_ok(corp, person.uid, person.password)

    assert again.id == first.id
    assert again.state.status is Status.ACTIVE  # SPEC §4.2: enabled, disabled by source


def test_seed_locked_user_is_refused_and_not_added(corp: Runtime, slapd: Slapd) -> None:
    bob = slapd.users["bob"]

    outcome = authenticate(corp, "bob", bob.password)

    assert not outcome.ok
    assert records(corp) == []


def test_expired_upstream_disables_the_record(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "expiring", shadowExpire="47482")  # 2100-01-01
    first = bind_ok(corp, person.uid, person.password)

    slapd.modify(person.dn, {"shadowExpire": "1"})  # 1970-01-02; slapd does not enforce it
    outcome = authenticate(corp, person.uid, person.password)

    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED
    assert outcome.password_verified  # slapd took the password; the record refused it
    assert outcome.user_id == first.id
    assert_disabled_by_source(record_by_id(corp, first.id), Reason.SOURCE_EXPIRED)


def test_expired_seed_user_is_refused_and_not_added(corp: Runtime, slapd: Slapd) -> None:
    carol = slapd.users["carol"]

    outcome = authenticate(corp, "carol", carol.password)

    assert outcome.reason is AuthReason.ACCOUNT_EXPIRED
    assert outcome.password_verified
    assert records(corp) == []


def test_password_must_change_is_not_a_success(corp: Runtime, slapd: Slapd) -> None:
    dave = slapd.users["dave"]  # pwdReset: TRUE

    outcome = authenticate(corp, "dave", dave.password)

    assert outcome.reason is AuthReason.PASSWORD_MUST_CHANGE
    assert outcome.password_verified and not outcome.ok
    corp.recorder.flush()
    view = record(corp, "dave")
    assert view is not None and view.last_auth_at is None


# -- scope, deletion, renames ----------------------------------------------------------------------


def test_out_of_scope_user_is_refused_and_never_added(corp: Runtime, slapd: Slapd) -> None:
    erin = slapd.users["erin"]  # ou=contractors
    binds_as_erin = slapd.count_binds(erin.dn)

    by_name = authenticate(corp, "erin", erin.password)
    by_dn = authenticate(corp, erin.dn, erin.password)

    assert by_name.reason is by_dn.reason is AuthReason.INVALID_CREDENTIALS
    assert not by_name.password_verified and not by_dn.password_verified
    assert slapd.count_binds(erin.dn) == binds_as_erin
    assert records(corp) == []


def test_user_moved_out_of_scope_is_disabled_as_missing(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "mover")
    first = bind_ok(corp, person.uid, person.password)

    slapd.rename(person.dn, f"uid={person.uid}", new_superior=slapd.contractors_dn)
    outcome = authenticate(corp, person.uid, person.password)

    assert not outcome.ok
    assert_disabled_by_source(record_by_id(corp, first.id), Reason.MISSING)


def test_user_deleted_between_two_syncs_is_disabled_as_missing(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "leaver")
    first = bind_ok(corp, person.uid, person.password)

    slapd.delete(person.dn)
    outcome = authenticate(corp, person.uid, person.password)

    assert outcome.reason is AuthReason.INVALID_CREDENTIALS
    view = record_by_id(corp, first.id)
    assert_disabled_by_source(view, Reason.MISSING)
    assert view.external_id == first.external_id


def test_a_name_recycled_upstream_reaches_the_new_entry(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "recycled")
    old = bind_ok(corp, person.uid, person.password)
    slapd.delete(person.dn)
    new_dn = slapd.add_user(person.uid, userPassword="successor-pw")

    outcome = authenticate(corp, person.uid, "successor-pw")

    # Keyed by entryUUID (SPEC §6): the old record is missing, the new entry a new record.
    assert_disabled_by_source(record_by_id(corp, old.id), Reason.MISSING)
    assert outcome.ok, outcome
    assert outcome.user_id is not None and outcome.user_id != old.id
    assert record_by_id(corp, outcome.user_id).external_id == entry_uuid(slapd, new_dn)


def test_renamed_user_binds_by_the_new_name_and_keeps_the_record(
    corp: Runtime, slapd: Slapd
) -> None:
    person = add_person(slapd, "before")
    first = bind_ok(corp, person.uid, person.password)
    new_uid = unique("after")

    new_dn = slapd.rename(person.dn, f"uid={new_uid}")
    by_name = bind_ok(corp, new_uid.upper(), person.password)
    by_dn = bind_ok(corp, new_dn.upper().replace(",", ", "), person.password)
    old_name = authenticate(corp, person.uid, person.password)

    assert by_name.id == by_dn.id == first.id
    assert by_name.external_id == first.external_id == entry_uuid(slapd, new_dn)
    assert by_name.user_name == new_uid
    assert by_name.dn is not None and by_name.dn.lower() == new_dn.lower()
    assert old_name.reason is AuthReason.INVALID_CREDENTIALS
    assert [view.id for view in records(corp)] == [first.id]


def test_user_moved_within_scope_binds_by_the_same_name(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "relocated")
    first = bind_ok(corp, person.uid, person.password)
    team = unique("team")
    with slapd.admin_connection() as conn:
        assert conn.add(f"ou={team},{slapd.people_dn}", ["organizationalUnit"], {"ou": team})

    new_dn = slapd.rename(
        person.dn, f"uid={person.uid}", new_superior=f"ou={team},{slapd.people_dn}"
    )
    # The cached DN no longer binds; the JIT read finds the new one, and the bind follows it.
    after = bind_ok(corp, person.uid, person.password)

    assert after.id == first.id
    assert after.dn is not None and after.dn.lower() == new_dn.lower()
    assert after.state.status is Status.ACTIVE


# -- the JIT window, administrators --------------------------------------------------------------


def test_within_the_interval_a_bind_does_not_read_again(
    make_corp: Callable[..., Runtime], slapd: Slapd
) -> None:
    runtime = make_corp(jit_interval_seconds=300)
    person = add_person(slapd, "steady", mobile="+1 202 555 0170")
    first = bind_ok(runtime, person.uid, person.password)
    slapd.modify(person.dn, {"mobile": "+1 202 555 0171"})
    searches = slapd.count_operations("SRCH")

    second = bind_ok(runtime, person.uid, person.password)

    assert slapd.count_operations("SRCH") == searches
    assert second.last_sync_at == first.last_sync_at
    assert second.sms_phones == (PhoneView("+1 202 555 0170", manual=False),)


def test_admin_disabled_user_is_refused_and_stays_disabled(corp: Runtime, slapd: Slapd) -> None:
    person = add_person(slapd, "benched", mobile="+1 202 555 0180")
    first = bind_ok(corp, person.uid, person.password)
    corp.user_admin.disable(SUPER, first.id, comment="left the team")
    slapd.modify(person.dn, {"mobile": "+1 202 555 0181"})

    outcome = authenticate(corp, person.uid, person.password)

    assert outcome.reason is AuthReason.ACCOUNT_DISABLED
    assert outcome.password_verified
    view = record_by_id(corp, first.id)
    assert view.state.status is Status.DISABLED
    assert view.state.disabled_by is DisabledBy.ADMIN
    # SPEC §4.2: source-owned attributes are still updated.
    assert view.sms_phones == (PhoneView("+1 202 555 0181", manual=False),)


# -- phone numbers -------------------------------------------------------------------------------


def test_synced_phone_follows_the_directory_and_a_manual_one_stays(
    corp: Runtime, slapd: Slapd
) -> None:
    person = add_person(
        slapd, "caller", mobile="+1 202 555 0150", telephoneNumber="+1 202 555 0160"
    )
    first = bind_ok(corp, person.uid, person.password)
    assert first.sms_phones == (PhoneView("+1 202 555 0150", manual=False),)

    slapd.modify(person.dn, {"mobile": "+1 202 555 0151"})
    changed = bind_ok(corp, person.uid, person.password)
    slapd.modify(person.dn, {"mobile": "+1-202-555-0151"})
    reformatted = bind_ok(corp, person.uid, person.password)

    assert changed.sms_phones == (PhoneView("+1 202 555 0151", manual=False),)
    assert reformatted.sms_phones == (PhoneView("+1-202-555-0151", manual=False),)

    corp.user_admin.edit_phone(SUPER, first.id, PhoneKind.SMS, 0, "+44 20 7946 0000")
    slapd.modify(person.dn, {"mobile": "+1 202 555 0152", "telephoneNumber": "+1 202 555 0161"})
    synced = bind_ok(corp, person.uid, person.password)

    assert synced.sms_phones == (PhoneView("+44 20 7946 0000", manual=True),)
    # The same sync did run: the voice number, not overridden, followed the directory.
    assert synced.voice_phones == (PhoneView("+1 202 555 0161", manual=False),)


# -- unavailable directories ---------------------------------------------------------------------


def test_failover_to_the_second_server(
    make_corp: Callable[..., Runtime], slapd_factory: Callable[..., Slapd]
) -> None:
    first, second = slapd_factory(), slapd_factory()
    first.stop()
    runtime = make_corp([first.url, second.url])
    alice = second.users["alice"]
    binds = second.count_binds(alice.dn)

    view = bind_ok(runtime, "alice", alice.password)

    assert second.count_binds(alice.dn) == binds + 1
    # The two servers give alice different entryUUIDs: the record is the second server's.
    assert view.external_id == entry_uuid(second, alice.dn)


def test_no_server_answers_directory_unavailable_record_unchanged(
    make_corp: Callable[..., Runtime], slapd_factory: Callable[..., Slapd]
) -> None:
    first, second = slapd_factory(), slapd_factory()
    runtime = make_corp([first.url, second.url])
    alice = first.users["alice"]
    bind_ok(runtime, "alice", alice.password)
    runtime.recorder.flush()
    before = record(runtime, "alice")

    first.stop()
    second.stop()
    outcome = authenticate(runtime, "alice", alice.password)
    runtime.recorder.flush()

    assert outcome.reason is AuthReason.DIRECTORY_UNAVAILABLE
    assert not outcome.ok
    assert record(runtime, "alice") == before


def test_a_silent_server_decides_from_the_cache_within_the_deadline(
    make_corp: Callable[..., Runtime], gateways: Gateways, slapd: Slapd, silent: SilentServer
) -> None:
    alice = slapd.users["alice"]
    earlier = make_corp()
    synced = bind_ok(earlier, "alice", alice.password)
    gateways.close(earlier)
    # The same store and source, restarted with a directory that accepts and never answers.
    runtime = make_corp([silent.url], jit_deadline_seconds=0.5)

    began = time.monotonic()
    outcome = authenticate(runtime, "alice", alice.password)
    elapsed = time.monotonic() - began
    connections = silent.accepted
    again = authenticate(runtime, "alice", alice.password)

    assert outcome.reason is again.reason is AuthReason.DIRECTORY_UNAVAILABLE
    # The JIT deadline (0.5 s) and the bind's operation timeout (1 s) run side by side.
    assert 0.9 < elapsed < 2.5
    after = record_by_id(runtime, synced.id)
    assert after.last_sync_at == synced.last_sync_at
    assert after.state == synced.state
    # The failed read gave its claim back, so the next attempt read again at once: a new
    # service connection (and a new bind connection) reached the silent server.
    assert sync_claim(runtime, synced.id) is None
    assert silent.accepted == connections + 2


# -- rate limit, exact lookup --------------------------------------------------------------------


def test_rate_limit_refuses_before_slapd(make_corp: Callable[..., Runtime], slapd: Slapd) -> None:
    runtime = make_corp(failed_auth_limit=3)
    person = add_person(slapd, "retrier")

    wrong = [authenticate(runtime, person.uid, "stale-password") for _ in range(3)]
    binds = slapd.count_binds(person.dn)
    outcome = authenticate(runtime, person.uid, person.password)

    assert [o.reason for o in wrong] == [AuthReason.INVALID_CREDENTIALS] * 3
    assert outcome.reason is AuthReason.RATE_LIMITED
    assert not outcome.password_verified
    assert slapd.count_binds(person.dn) == binds


def test_rate_limit_holds_for_the_user_whatever_the_name_form(
    make_corp: Callable[..., Runtime], slapd: Slapd
) -> None:
    runtime = make_corp(failed_auth_limit=2)
    person = add_person(slapd, "formshifter")
    for _ in range(2):
        assert authenticate(runtime, person.uid, "stale").reason is AuthReason.INVALID_CREDENTIALS
    binds = slapd.count_binds(person.dn)

    outcome = authenticate(runtime, person.dn, "stale")

    assert outcome.reason is AuthReason.RATE_LIMITED
    assert slapd.count_binds(person.dn) == binds


def test_exact_lookup_adds_the_user_and_never_matches_a_wildcard(
    corp: Runtime, slapd: Slapd
) -> None:
    frank = slapd.users["frank"]

    found = corp.lookup.include("corp", "frank")
    wildcard = corp.lookup.include("corp", "fr*")

    assert found is not None and found.outcome is Outcome.ADDED
    assert found.user_id is not None
    view = record_by_id(corp, found.user_id)
    assert view.external_id == entry_uuid(slapd, frank.dn)
    assert view.state.status is Status.ACTIVE
    assert wildcard is None
    assert [v.user_name for v in records(corp)] == ["frank"]
    assert slapd.count_operations("SRCH", contains="(uid=fr*)") == 0


@pytest.mark.parametrize("name", ["frank\x00", "fr\x00ank", "frank\n", "\x7ffrank"])
def test_a_name_with_a_control_character_is_found_nowhere(
    corp: Runtime, slapd: Slapd, name: str
) -> None:
    """What slapd answers for such a name (nobody), on both stores, without asking it."""
    searches = slapd.count_operations("SRCH")

    assert corp.lookup.include("corp", name) is None
    assert authenticate(corp, name, slapd.users["frank"].password).reason is (
        AuthReason.INVALID_CREDENTIALS
    )
    assert records(corp) == []
    assert slapd.count_operations("SRCH") == searches
