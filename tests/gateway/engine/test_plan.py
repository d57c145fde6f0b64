"""Sync planning compared as lists of operations (STYLE habit 3)."""

from datetime import UTC, datetime, timedelta

from gateway.engine.phones import PhoneEntry, PhoneKind
from gateway.engine.plan import (
    Audit,
    CreateUser,
    MarkSynced,
    Outcome,
    SetPhones,
    SetState,
    SourceUser,
    StoredUser,
    WriteSourceData,
    plan_missing,
    plan_report,
)
from gateway.engine.status import active, disabled
from gateway.engine.types import DisabledBy, Reason, SourceStatus, Trigger

NOW = datetime(2026, 11, 22, tzinfo=UTC)
ALICE = SourceUser(
    "uuid-a", "alice", SourceStatus.ENABLED, display_name="Alice", sms_phones=("+1 555-0100",)
)


def stored(data: SourceUser, state=None, phones=None) -> StoredUser:
    return StoredUser("id-a", data.user_name, state or active(), data.digest(), phones or {})


def test_new_enabled_user_is_created_with_synced_phones():
    plan = plan_report(None, ALICE, Trigger.BULK, NOW)
    assert plan.outcome is Outcome.ADDED
    assert plan.operations == (
        CreateUser(ALICE, active()),
        SetPhones(PhoneKind.SMS, (PhoneEntry("+1 555-0100", manual=False),)),
        MarkSynced(NOW),
        Audit("user.added", {"rule": "enabled/none"}),
    )


def test_new_disabled_user_is_not_synchronized_with_reason():
    report = SourceUser("uuid-b", "bob", SourceStatus.DISABLED)
    plan = plan_report(None, report, Trigger.BULK, NOW)
    assert (plan.outcome, plan.operations) == (Outcome.NOT_SYNCHRONIZED, ())
    assert plan.not_synchronized_reason == "disabled in the source"


def test_same_data_is_unchanged_and_only_marks_the_sync():
    current = stored(ALICE, phones={PhoneKind.SMS: (PhoneEntry("+1 555-0100", False),)})
    plan = plan_report(current, ALICE, Trigger.BULK, NOW)
    assert plan.outcome is Outcome.UNCHANGED
    assert plan.operations == (MarkSynced(NOW),)


def test_changed_data_is_written_and_counted_updated():
    current = stored(ALICE, phones={PhoneKind.SMS: (PhoneEntry("+1 555-0100", False),)})
    renamed = SourceUser(
        "uuid-a", "alice2", SourceStatus.ENABLED, display_name="Alice", sms_phones=("+1 555-0100",)
    )
    plan = plan_report(current, renamed, Trigger.BULK, NOW)
    assert plan.outcome is Outcome.UPDATED
    assert plan.operations == (WriteSourceData(renamed), MarkSynced(NOW))


def test_manual_phone_survives_a_changed_directory_phone():
    manual = (PhoneEntry("+44 20 7946 0000", manual=True),)
    current = stored(ALICE, phones={PhoneKind.SMS: manual})
    changed = SourceUser(
        "uuid-a", "alice", SourceStatus.ENABLED, display_name="Alice", sms_phones=("+1 555-0199",)
    )
    plan = plan_report(current, changed, Trigger.JIT, NOW)
    assert not any(isinstance(op, SetPhones) for op in plan.operations)


def test_disabling_an_active_user_is_counted_disabled_and_audited():
    report = SourceUser(
        "uuid-a", "alice", SourceStatus.DISABLED, display_name="Alice", sms_phones=("+1 555-0100",)
    )
    current = stored(ALICE, phones={PhoneKind.SMS: (PhoneEntry("+1 555-0100", False),)})
    plan = plan_report(current, report, Trigger.JIT, NOW)
    new = disabled(DisabledBy.SOURCE, Reason.SOURCE_DISABLED, SourceStatus.DISABLED)
    assert plan.outcome is Outcome.DISABLED
    assert plan.operations == (
        WriteSourceData(report),
        SetState(active(), new),
        Audit(
            "user.status_changed",
            {
                "from": "active",
                "to": "disabled by source (source_disabled)",
                "rule": "disabled/active",
                "source_status": "disabled",
            },
        ),
        MarkSynced(NOW),
    )


def test_source_status_change_under_admin_disable_is_written_but_not_audited():
    admin = disabled(DisabledBy.ADMIN, Reason.ADMIN, SourceStatus.ENABLED)
    plan = plan_missing(stored(ALICE, admin), Trigger.BULK, NOW)
    assert plan.operations == (
        SetState(admin, disabled(DisabledBy.ADMIN, Reason.ADMIN, SourceStatus.MISSING)),
        MarkSynced(NOW),
    )
    assert plan.outcome is Outcome.UPDATED


def test_missing_active_user_is_disabled():
    plan = plan_missing(stored(ALICE), Trigger.REFRESH, NOW)
    assert plan.outcome is Outcome.DISABLED


def test_missing_unknown_user_is_ignored():
    plan = plan_missing(None, Trigger.BULK, NOW)
    assert (plan.outcome, plan.operations) == (Outcome.IGNORED, ())


def test_missing_already_disabled_user_is_unchanged():
    gone = disabled(
        DisabledBy.SOURCE, Reason.MISSING, SourceStatus.MISSING, NOW - timedelta(days=1)
    )
    plan = plan_missing(stored(ALICE, gone), Trigger.BULK, NOW)
    assert (plan.outcome, plan.operations) == (Outcome.UNCHANGED, (MarkSynced(NOW),))


def test_digest_changes_with_any_source_owned_field():
    base = ALICE.digest()
    assert (
        SourceUser(
            "uuid-a",
            "alice",
            SourceStatus.ENABLED,
            display_name="Alice",
            sms_phones=("+1 555-0100",),
            groups=("staff",),
        ).digest()
        != base
    )
    assert (
        SourceUser(
            "uuid-a",
            "alice",
            SourceStatus.EXPIRED,
            display_name="Alice",
            sms_phones=("+1 555-0100",),
        ).digest()
        != base
    )
