"""The user service against a real store: SQLite and PostgreSQL (the `store` fixture)."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.engine.phones import PhoneKind
from gateway.engine.plan import Outcome, SourceUser
from gateway.engine.types import DisabledBy, Reason, Role, SourceStatus, Status, Trigger
from gateway.errors import EnableRefused, InvalidInput, NotFound, PermissionDenied
from gateway.users.admin import UserAdministration
from gateway.users.service import SYSTEM, Actor, UserNameTaken, UserService
from store import users as queries
from store.models import AuditEvent, User
from tests.clock import Clock

SUPER = Actor("ops", Role.SUPER_ADMIN)
HELP = Actor("desk", Role.HELP_DESK)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Units:
    """The user service as its callers use it: each sync call in a unit of work of its own (as
    a job page or a JIT sync opens one), and the administrators' actions, which open theirs."""

    def __init__(self, store, clock) -> None:
        self._store = store
        self.users = UserService(clock=clock)
        self.admin = UserAdministration(store, clock=clock)

    def __getattr__(self, name):
        if hasattr(self.admin, name):
            return getattr(self.admin, name)
        method = getattr(self.users, name)

        def in_unit_of_work(*args, **kwargs):
            with self._store.writing() as session:
                return method(session, *args, **kwargs)

        return in_unit_of_work


@pytest.fixture
def service(store, clock) -> Units:
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "ldap"), ("hr", "scim")], clock())
    return Units(store, clock)


def alice(status=SourceStatus.ENABLED, **changes) -> SourceUser:
    fields = {
        "external_id": "uuid-alice",
        "user_name": "Alice",
        "status": status,
        "dn": "uid=Alice,ou=people,dc=example,dc=org",
        "display_name": "Alice Liddell",
        "sms_phones": ("+1 555-0100",),
        "groups": ("cn=staff,ou=groups,dc=example,dc=org",),
        "policy": (("title", ("Engineer",)),),
    }
    fields.update(changes)
    return SourceUser(**fields)


def test_first_sync_adds_then_unchanged_then_updated(service):
    first = service.apply_report("corp", alice(), Trigger.BULK)
    assert first.outcome is Outcome.ADDED
    assert service.apply_report("corp", alice(), Trigger.BULK).outcome is Outcome.UNCHANGED
    changed = service.apply_report("corp", alice(display_name="Alice L."), Trigger.BULK)
    assert changed.outcome is Outcome.UPDATED
    view = service.get(SUPER, first.user_id)
    assert (view.display_name, view.user_name, view.state.status) == (
        "Alice L.",
        "Alice",
        Status.ACTIVE,
    )
    assert view.policy == {"title": ["Engineer"]}


def test_unchanged_sync_keeps_the_etag_and_a_change_moves_it(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    version = service.get(SUPER, user_id).version
    service.apply_report("corp", alice(), Trigger.JIT)
    assert service.get(SUPER, user_id).version == version
    service.apply_report("corp", alice(display_name="New"), Trigger.JIT)
    assert service.get(SUPER, user_id).version == version + 1


def test_a_jit_report_that_changes_nothing_writes_the_sync_time_alone(service, store, clock):
    """The JIT path's quick sync (`view=False`): same answer as the full one, and only
    last_sync_at moves: no audit event, the ETag and updated_at stay, and a bulk run's mark
    on the record stays too."""
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    with store.writing() as session:
        session.get_one(User, user_id).seen_in_job = 7
    before = service.get(SUPER, user_id)
    with store.reading() as session:
        events = len(queries.audit_events(session, user_id=user_id))
    clock.advance(seconds=600)
    with store.writing() as session:
        quick = service.users.apply_report(session, "corp", alice(), Trigger.JIT, view=False)
    assert (quick.outcome, quick.user_id, quick.state) == (
        Outcome.UNCHANGED,
        user_id,
        before.state,
    )
    after = service.get(SUPER, user_id)
    assert after.last_sync_at == clock.now
    assert (after.version, after.updated_at) == (before.version, before.updated_at)
    with store.reading() as session:
        assert len(queries.audit_events(session, user_id=user_id)) == events
        assert session.get_one(User, user_id).seen_in_job == 7
    # A report that changes something still goes through the engine, quick or not.
    with store.writing() as session:
        changed = service.users.apply_report(
            session, "corp", alice(SourceStatus.DISABLED), Trigger.JIT, view=False
        )
    assert changed.outcome is Outcome.DISABLED
    assert service.get(SUPER, user_id).version == before.version + 1


def test_disabled_new_user_is_not_added(service, store):
    result = service.apply_report("corp", alice(SourceStatus.DISABLED), Trigger.BULK)
    assert (result.outcome, result.user_id) == (Outcome.NOT_SYNCHRONIZED, None)
    assert result.not_synchronized_reason == "disabled in the source"
    with store.reading() as session:
        assert session.scalars(select(User)).all() == []


def test_sync_disables_and_audits_then_re_enables(service, store):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    result = service.apply_report("corp", alice(SourceStatus.EXPIRED), Trigger.JIT)
    assert result.outcome is Outcome.DISABLED
    view = service.get(SUPER, user_id)
    assert (view.state.disabled_by, view.state.reason) == (DisabledBy.SOURCE, Reason.SOURCE_EXPIRED)
    with pytest.raises(EnableRefused):
        service.enable(SUPER, user_id)
    service.apply_report("corp", alice(), Trigger.JIT)
    assert service.get(SUPER, user_id).state.status is Status.ACTIVE
    with store.reading() as session:
        events = [(e.actor, e.action) for e in queries.audit_events(session, user_id=user_id)]
    assert events == [
        ("sync:bulk", "user.added"),
        ("sync:jit", "user.status_changed"),
        ("sync:jit", "user.status_changed"),
    ]


def test_missing_disables_and_unknown_missing_is_ignored(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    assert service.apply_missing("corp", "uuid-alice", Trigger.REFRESH).outcome is Outcome.DISABLED
    assert service.get(SUPER, user_id).state.reason is Reason.MISSING
    assert service.apply_missing("corp", "uuid-nobody", Trigger.BULK).outcome is Outcome.IGNORED


def test_admin_disable_survives_sync_while_source_data_follows(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    service.disable(HELP, user_id, comment="lost laptop")
    service.apply_report("corp", alice(display_name="Renamed"), Trigger.JIT)
    view = service.get(SUPER, user_id)
    assert (view.state.status, view.state.disabled_by) == (Status.DISABLED, DisabledBy.ADMIN)
    assert view.display_name == "Renamed"
    service.enable(HELP, user_id)
    assert service.get(SUPER, user_id).state.status is Status.ACTIVE


def test_admin_enable_refused_when_source_went_missing_under_admin_disable(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    service.disable(SUPER, user_id)
    service.apply_missing("corp", "uuid-alice", Trigger.BULK)
    with pytest.raises(EnableRefused, match="missing"):
        service.enable(SUPER, user_id)


def test_gateway_owned_data_is_never_touched_by_sync(service, clock):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    device_id = service.register_device(HELP, user_id, kind="totp", label="phone", data={"k": 1})
    service.set_notes(HELP, user_id, "VIP")
    service.add_phone(HELP, user_id, PhoneKind.VOICE, "+44 20 7946 0000")
    clock.advance(minutes=10)
    service.apply_report(
        "corp", alice(display_name="Changed", voice_phones=("+1 555-0111",)), Trigger.BULK
    )
    service.apply_missing("corp", "uuid-alice", Trigger.BULK)
    view = service.get(SUPER, user_id)
    assert [(d.id, d.kind, d.label) for d in service.devices(SUPER, user_id)] == [
        (device_id, "totp", "phone")
    ]
    assert view.admin_notes == "VIP"
    assert [(p.number, p.manual) for p in view.voice_phones] == [("+44 20 7946 0000", True)]
    assert view.created_at == clock.now - timedelta(minutes=10)
    assert view.last_sync_at == clock.now


def test_phone_provenance_through_the_service(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    # A format-only edit stays synced: the next sync restores the directory's format.
    service.edit_phone(HELP, user_id, PhoneKind.SMS, 0, "+1 555.0100")
    assert service.get(SUPER, user_id).sms_phones[0].manual is False
    service.apply_report("corp", alice(), Trigger.JIT)
    assert service.get(SUPER, user_id).sms_phones[0].number == "+1 555-0100"
    # Changed digits make it manual: a changed directory value no longer overwrites it.
    service.edit_phone(HELP, user_id, PhoneKind.SMS, 0, "+1 555-0142")
    service.apply_report("corp", alice(sms_phones=("+1 555-0177",)), Trigger.JIT)
    sms = service.get(SUPER, user_id).sms_phones
    assert [(p.number, p.manual) for p in sms] == [("+1 555-0142", True)]
    # Deleting leaves a tombstone that sync does not fill.
    service.delete_phone(HELP, user_id, PhoneKind.SMS, 0)
    service.apply_report("corp", alice(sms_phones=("+1 555-0188",)), Trigger.JIT)
    assert [(p.number, p.manual) for p in service.get(SUPER, user_id).sms_phones] == [("", True)]
    with pytest.raises(InvalidInput, match="sms_phones"):
        service.edit_phone(HELP, user_id, PhoneKind.SMS, 7, "+1 555")
    with pytest.raises(InvalidInput, match="sms_phones"):
        service.add_phone(HELP, user_id, PhoneKind.SMS, "call me")


def test_help_desk_may_not_act_as_system_and_system_may_not_admin(service):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    with pytest.raises(PermissionDenied):
        service.disable(SYSTEM, user_id)
    with pytest.raises(NotFound):
        service.disable(HELP, "no-such-id")


def test_user_names_are_unique_case_insensitively_per_source(service):
    service.apply_report("hr", alice(external_id="scim-1"), Trigger.PROVISIONING)
    with pytest.raises(UserNameTaken):
        service.apply_report(
            "hr", alice(external_id="scim-2", user_name="ALICE"), Trigger.PROVISIONING
        )
    # Another source may have its own Alice.
    assert service.apply_report("corp", alice(), Trigger.BULK).outcome is Outcome.ADDED


def test_directory_recycled_name_retires_the_old_record(service):
    old_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    new = service.apply_report("corp", alice(external_id="uuid-alice-2"), Trigger.JIT)
    assert new.outcome is Outcome.ADDED
    old = service.get(SUPER, old_id)
    assert (old.state.status, old.state.reason) == (Status.DISABLED, Reason.MISSING)


def test_recycled_long_name_fits_the_column(service):
    long_name = "a" * 255
    old_id = service.apply_report("corp", alice(user_name=long_name), Trigger.BULK).user_id
    service.apply_report("corp", alice(external_id="uuid-2", user_name=long_name), Trigger.BULK)
    assert service.get(SUPER, old_id).state.reason is Reason.MISSING


def test_provisioning_delete_pends_and_repost_revives_with_gateway_data(service):
    user_id = service.apply_report("hr", alice(external_id="scim-1"), Trigger.PROVISIONING).user_id
    service.set_notes(SUPER, user_id, "keep me")
    service.provisioning_delete("hr", user_id)
    view = service.get(SUPER, user_id)
    assert view.state.pending_deletion and view.state.reason is Reason.MISSING
    with pytest.raises(NotFound):
        service.provisioning_delete("corp", user_id)  # another source's id does not exist
    service.apply_report("hr", alice(external_id="scim-1"), Trigger.PROVISIONING)
    view = service.get(SUPER, user_id)
    assert view.state.status is Status.ACTIVE and not view.state.pending_deletion
    assert view.admin_notes == "keep me"


def test_concurrent_first_syncs_of_one_user_create_one_record(service, store):
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def sync() -> None:
        try:
            barrier.wait()
            service.apply_report("corp", alice(), Trigger.JIT)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.reading() as session:
        assert len(session.scalars(select(User)).all()) == 1
        added = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.added")).all()
        assert len(added) == 1


def test_sync_window_claim_is_exclusive_and_released_on_failure(service, store, clock):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    clock.advance(seconds=301)
    now = clock.now

    def claim() -> bool:
        with store.writing() as session:
            return queries.claim_sync_window(
                session,
                user_id,
                now=now,
                synced_before=now - timedelta(seconds=300),
                until=now + timedelta(seconds=2),
            )

    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contender() -> None:
        barrier.wait()
        results.append(claim())

    threads = [threading.Thread(target=contender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    with store.writing() as session:
        queries.release_sync_claim(session, user_id)
    assert claim() is True  # a failed read gives the window back at once


def test_sync_window_not_claimable_inside_the_window(service, store, clock):
    user_id = service.apply_report("corp", alice(), Trigger.BULK).user_id
    clock.advance(seconds=100)
    now = clock.now
    with store.writing() as session:
        assert not queries.claim_sync_window(
            session,
            user_id,
            now=now,
            synced_before=now - timedelta(seconds=300),
            until=now + timedelta(seconds=2),
        )


# -- pages of reports (bulk sync's write path) --------------------------------------------------


def _page(count: int, **changes) -> list[SourceUser]:
    return [
        alice(external_id=f"uuid-{n}", user_name=f"user{n}", dn=f"uid=user{n},dc=x", **changes)
        for n in range(count)
    ]


def test_a_page_is_planned_as_single_reports_are(service, clock):
    first = service.apply_batch("corp", _page(3), Trigger.BULK)
    assert [r.outcome for r in first] == [Outcome.ADDED] * 3
    view = service.get(SUPER, first[0].user_id)
    assert view.sms_phones[0].number == "+1 555-0100"
    assert (view.display_name, view.state.status, view.last_sync_at) == (
        "Alice Liddell",
        Status.ACTIVE,
        clock(),
    )
    with service._store.reading() as session:
        added = [e for e in queries.audit_events(session) if e.action == "user.added"]
    assert len(added) == 3

    clock.advance(minutes=1)
    again = service.apply_batch("corp", _page(3), Trigger.BULK)
    assert [r.outcome for r in again] == [Outcome.UNCHANGED] * 3
    assert service.get(SUPER, first[0].user_id).last_sync_at == clock()
    assert service.get(SUPER, first[0].user_id).version == view.version

    mixed = _page(3)
    mixed[1] = alice(external_id="uuid-1", user_name="user1", dn="uid=user1,dc=x",
                     status=SourceStatus.DISABLED)  # fmt: skip
    outcomes = [r.outcome for r in service.apply_batch("corp", mixed, Trigger.BULK)]
    assert outcomes == [Outcome.UNCHANGED, Outcome.DISABLED, Outcome.UNCHANGED]


def test_an_admin_edit_since_the_last_sync_is_planned_in_full(service, clock):
    """A synced number whose format an administrator changed is restored by the next sync
    (SPEC §3) even though the directory's data did not change."""
    [added] = service.apply_batch("corp", _page(1), Trigger.BULK)
    clock.advance(minutes=1)
    service.edit_phone(SUPER, added.user_id, PhoneKind.SMS, 0, "+15550100")
    clock.advance(minutes=1)
    [result] = service.apply_batch("corp", _page(1), Trigger.BULK)
    assert result.outcome is Outcome.UPDATED
    assert service.get(SUPER, added.user_id).sms_phones[0].number == "+1 555-0100"


def test_the_budget_stops_adding_users_but_not_updating_them(service):
    from gateway.users.service import LIMIT_REACHED, AddBudget

    service.apply_batch("corp", _page(2), Trigger.BULK)
    budget = AddBudget(1)
    results = service.apply_batch("corp", _page(5), Trigger.BULK, budget=budget)
    assert [r.outcome for r in results] == [Outcome.UNCHANGED] * 2 + [Outcome.ADDED] + [
        Outcome.NOT_SYNCHRONIZED
    ] * 2
    assert {r.not_synchronized_reason for r in results[3:]} == {LIMIT_REACHED}
    assert budget.remaining == 0


def test_two_entries_of_a_page_with_one_user_name_lose_only_one(service):
    from gateway.users.service import NAME_CONFLICT

    page = [
        alice(external_id="uuid-a", user_name="Twin", dn="uid=twin,ou=a,dc=x"),
        alice(external_id="uuid-b", user_name="twin", dn="uid=twin,ou=b,dc=x"),
        alice(external_id="uuid-c", user_name="other", dn="uid=other,dc=x"),
    ]
    results = service.apply_batch("corp", page, Trigger.BULK)
    assert [r.outcome for r in results] == [
        Outcome.ADDED,
        Outcome.NOT_SYNCHRONIZED,
        Outcome.ADDED,
    ]
    assert results[1].not_synchronized_reason == NAME_CONFLICT
    with service._store.reading() as session:
        assert session.scalar(select(User.external_id).where(User.user_name_key == "twin")) == (
            "uuid-a"
        )


def test_missing_pages_disable_the_users_they_name(service):
    added = service.apply_batch("corp", _page(2), Trigger.BULK)
    results = service.apply_missing_batch("corp", ["uuid-0", "uuid-unknown"], Trigger.BULK)
    assert [r.outcome for r in results] == [Outcome.DISABLED, Outcome.IGNORED]
    assert service.get(SUPER, added[0].user_id).state.reason is Reason.MISSING
    assert service.get(SUPER, added[1].user_id).state.status is Status.ACTIVE


def test_a_value_too_long_for_the_store_leaves_out_only_its_user(service, store):
    from gateway.users.service import TOO_LONG

    page = _page(3)
    page[1] = alice(external_id="uuid-1", user_name="user1", display_name="x" * 300)
    results = service.apply_batch("corp", page, Trigger.BULK)
    if store.dialect == "postgresql":  # SQLite keeps any length; PostgreSQL refuses it
        assert [r.outcome for r in results] == [
            Outcome.ADDED,
            Outcome.NOT_SYNCHRONIZED,
            Outcome.ADDED,
        ]
        assert results[1].not_synchronized_reason == TOO_LONG
    else:
        assert [r.outcome for r in results] == [Outcome.ADDED] * 3
