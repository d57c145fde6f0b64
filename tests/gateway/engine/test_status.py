"""SPEC §4.2, one named test per row of the table, plus §4.4 and §5.5 status changes.

Each test states the full resulting state, so a rule that drifts in any field fails.
"""

from datetime import UTC, datetime, timedelta

import pytest

from gateway.engine.status import (
    Action,
    RecordState,
    active,
    admin_disable,
    admin_enable,
    decide,
    disabled,
    mark_never_used,
    source_deleted,
)
from gateway.engine.types import DisabledBy, Reason, SourceStatus, Status, Trigger
from gateway.errors import EnableRefused

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)
SRC = DisabledBy.SOURCE
ENABLED, DISABLED, EXPIRED, MISSING = (
    SourceStatus.ENABLED,
    SourceStatus.DISABLED,
    SourceStatus.EXPIRED,
    SourceStatus.MISSING,
)
ALL_TRIGGERS = list(Trigger)
SYNC_TRIGGERS = [Trigger.JIT, Trigger.SINGLE, Trigger.BULK, Trigger.REFRESH, Trigger.PROVISIONING]
DIRECTORY_TRIGGERS = [Trigger.JIT, Trigger.SINGLE, Trigger.BULK, Trigger.REFRESH]


# Row 1 — disabled or expired | none | not added (a bulk job lists the user, with the reason).
# A directory's row: a provisioning client's disabled users are added (tests further down).
@pytest.mark.parametrize(
    ("reported", "reason"), [(DISABLED, Reason.SOURCE_DISABLED), (EXPIRED, Reason.SOURCE_EXPIRED)]
)
@pytest.mark.parametrize("trigger", DIRECTORY_TRIGGERS)
def test_row1_disabled_or_expired_new_user_is_not_added(reported, reason, trigger):
    decision = decide(None, reported, trigger, NOW)
    assert decision.action is Action.NOT_ADDED
    assert decision.state is None
    assert decision.not_added_reason is reason


# Row 2 — disabled or expired | active | disabled by source; no manual re-enable while so
@pytest.mark.parametrize(
    ("reported", "reason"), [(DISABLED, Reason.SOURCE_DISABLED), (EXPIRED, Reason.SOURCE_EXPIRED)]
)
@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_row2_disabled_or_expired_active_user_is_disabled_by_source(reported, reason, trigger):
    decision = decide(active(), reported, trigger, NOW)
    assert decision.action is Action.UPDATE
    assert decision.state == disabled(SRC, reason, reported)
    with pytest.raises(EnableRefused):
        admin_enable(decision.state)


# Row 3 — anything | disabled by admin (pending deletion or not) | stays disabled
@pytest.mark.parametrize("reported", list(SourceStatus))
@pytest.mark.parametrize("pending", [None, EARLIER])
@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_row3_admin_disabled_user_stays_disabled(reported, pending, trigger):
    current = disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED, pending)
    decision = decide(current, reported, trigger, NOW)
    assert decision.action is Action.UPDATE  # source-owned attributes are still written
    assert decision.state == disabled(DisabledBy.ADMIN, Reason.ADMIN, reported, pending)


# Row 4 — disabled or expired | disabled by source (pending or not) | stays; reason follows
@pytest.mark.parametrize(
    ("reported", "reason"), [(DISABLED, Reason.SOURCE_DISABLED), (EXPIRED, Reason.SOURCE_EXPIRED)]
)
@pytest.mark.parametrize(
    "old_reason", [Reason.SOURCE_DISABLED, Reason.SOURCE_EXPIRED, Reason.MISSING]
)
@pytest.mark.parametrize("pending", [None, EARLIER])
def test_row4_disabled_by_source_stays_and_reason_follows(reported, reason, old_reason, pending):
    current = disabled(
        SRC, old_reason, SourceStatus(old_reason.value.removeprefix("source_")), pending
    )
    decision = decide(current, reported, Trigger.BULK, NOW)
    assert decision.state == disabled(SRC, reason, reported, pending)


# Row 5 — enabled | disabled by source | re-enabled
@pytest.mark.parametrize(
    "old_reason", [Reason.SOURCE_DISABLED, Reason.SOURCE_EXPIRED, Reason.MISSING]
)
@pytest.mark.parametrize("trigger", SYNC_TRIGGERS)
def test_row5_enabled_disabled_by_source_is_re_enabled(old_reason, trigger):
    current = disabled(SRC, old_reason, DISABLED)
    decision = decide(current, ENABLED, trigger, NOW)
    assert decision.state == active()
    assert decision.rule == "enabled/disabled-by-source"


# Row 6 — enabled | disabled by source, then pending deletion | re-enabled, no longer pending
@pytest.mark.parametrize("trigger", SYNC_TRIGGERS)
def test_row6_enabled_source_disabled_pending_is_re_enabled_and_not_pending(trigger):
    current = disabled(SRC, Reason.SOURCE_DISABLED, DISABLED, EARLIER)
    decision = decide(current, ENABLED, trigger, NOW)
    assert decision.state == active()
    assert decision.state is not None and not decision.state.pending_deletion
    assert decision.rule == "enabled/disabled-by-source:pending"


# Row 7 — missing | active | disabled by source (reason missing)
@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_row7_missing_active_user_is_disabled_by_source_missing(trigger):
    decision = decide(active(), MISSING, trigger, NOW)
    assert decision.state == disabled(SRC, Reason.MISSING, MISSING)


# Row 8 — missing | disabled or pending deletion | stays as it is
@pytest.mark.parametrize(
    "current",
    [
        disabled(SRC, Reason.SOURCE_DISABLED, DISABLED),
        disabled(SRC, Reason.SOURCE_EXPIRED, EXPIRED, EARLIER),
        disabled(SRC, Reason.MISSING, MISSING, EARLIER),
        disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED),
        disabled(DisabledBy.CLEANUP, Reason.NEVER_USED, ENABLED, EARLIER),
    ],
    ids=["source-disabled", "source-expired-pending", "missing-pending", "admin", "never-used"],
)
def test_row8_missing_disabled_or_pending_stays(current):
    decision = decide(current, MISSING, Trigger.BULK, NOW)
    assert decision.state is not None
    assert (decision.state.status, decision.state.disabled_by, decision.state.reason) == (
        Status.DISABLED,
        current.disabled_by,
        current.reason,
    )
    assert decision.state.pending_deletion_since == current.pending_deletion_since
    assert decision.state.source_status is MISSING  # remembered for the admin-enable check


# Row 9 — enabled | none | added, active
@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_row9_enabled_new_user_is_added_active(trigger):
    decision = decide(None, ENABLED, trigger, NOW)
    assert decision.action is Action.ADD
    assert decision.state == active()


# Row 10 — enabled | disabled by cleanup (never_used), pending | only JIT or an admin re-enable
NEVER_USED = disabled(DisabledBy.CLEANUP, Reason.NEVER_USED, ENABLED, EARLIER)


@pytest.mark.parametrize("trigger", [Trigger.JIT, Trigger.SINGLE])
def test_row10_never_used_pending_is_revived_by_authentication_or_admin_sync(trigger):
    decision = decide(NEVER_USED, ENABLED, trigger, NOW)
    assert decision.state == active()


@pytest.mark.parametrize("trigger", [Trigger.BULK, Trigger.REFRESH, Trigger.PROVISIONING])
def test_row10_never_used_pending_is_left_pending_by_bulk_and_refresh(trigger):
    decision = decide(NEVER_USED, ENABLED, trigger, NOW)
    assert decision.state == NEVER_USED


def test_row10_admin_enable_revives_never_used_pending():
    assert admin_enable(NEVER_USED) == active()


def test_missing_new_user_is_ignored():
    decision = decide(None, MISSING, Trigger.BULK, NOW)
    assert (decision.action, decision.state) == (Action.IGNORE, None)


def test_enabled_active_user_stays_active():
    assert decide(active(), ENABLED, Trigger.BULK, NOW).state == active()


@pytest.mark.parametrize("reported", [DISABLED, EXPIRED])
def test_never_used_pending_stays_when_source_disables(reported):
    decision = decide(NEVER_USED, reported, Trigger.JIT, NOW)
    assert decision.state == disabled(DisabledBy.CLEANUP, Reason.NEVER_USED, reported, EARLIER)
    with pytest.raises(EnableRefused):
        admin_enable(decision.state)


# SPEC §4.2, SCIM paragraph: DELETE = missing, followed at once by pending deletion.
def test_provisioning_delete_of_active_user_is_missing_and_pending():
    assert source_deleted(active(), NOW) == disabled(SRC, Reason.MISSING, MISSING, NOW)


def test_provisioning_delete_of_admin_disabled_user_keeps_admin_disable_and_pends():
    current = disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED)
    assert source_deleted(current, NOW) == disabled(DisabledBy.ADMIN, Reason.ADMIN, MISSING, NOW)


def test_repeated_provisioning_delete_keeps_the_first_date():
    first = source_deleted(active(), EARLIER)
    assert source_deleted(first, NOW).pending_deletion_since == EARLIER


def test_post_after_provisioning_delete_revives():
    deleted = source_deleted(active(), EARLIER)
    assert decide(deleted, ENABLED, Trigger.PROVISIONING, NOW).state == active()


# SPEC §4.4: manual disable always allowed; manual enable refused while the source disagrees.
@pytest.mark.parametrize(
    "current",
    [active(), disabled(SRC, Reason.SOURCE_DISABLED, DISABLED), NEVER_USED],
    ids=["active", "source-disabled", "never-used-pending"],
)
def test_admin_disable_always_allowed_and_keeps_pending_date(current):
    after = admin_disable(current)
    assert (after.status, after.disabled_by, after.reason) == (
        Status.DISABLED,
        DisabledBy.ADMIN,
        Reason.ADMIN,
    )
    assert after.pending_deletion_since == current.pending_deletion_since


@pytest.mark.parametrize("reported", [DISABLED, EXPIRED, MISSING])
def test_admin_enable_refused_while_source_not_enabled(reported):
    admin_disabled = disabled(DisabledBy.ADMIN, Reason.ADMIN, reported)
    with pytest.raises(EnableRefused) as info:
        admin_enable(admin_disabled)
    assert info.value.source_status == reported.value


def test_admin_enable_of_admin_disabled_user_whose_source_is_enabled():
    assert admin_enable(disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED, EARLIER)) == active()


# SPEC §5.5 cleanup marking.
def test_mark_never_used_disables_active_user_and_pends():
    assert mark_never_used(active(), NOW) == disabled(
        DisabledBy.CLEANUP, Reason.NEVER_USED, ENABLED, NOW
    )


def test_mark_never_used_keeps_who_disabled_a_disabled_user():
    current = disabled(SRC, Reason.SOURCE_DISABLED, DISABLED)
    assert mark_never_used(current, NOW) == disabled(SRC, Reason.SOURCE_DISABLED, DISABLED, NOW)


def test_mark_never_used_leaves_pending_user_alone():
    assert mark_never_used(NEVER_USED, NOW) is NEVER_USED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": Status.ACTIVE, "disabled_by": DisabledBy.ADMIN},
        {"status": Status.ACTIVE, "pending_deletion_since": NOW},
        {"status": Status.DISABLED},
        {"status": Status.DISABLED, "disabled_by": DisabledBy.ADMIN},
    ],
)
def test_inconsistent_states_are_refused(kwargs):
    with pytest.raises(ValueError, match="record"):
        RecordState(**kwargs)


# SPEC §4.2, SCIM paragraph: a provisioning client creates its disabled users too, and a POST
# of a user it deleted re-creates it without the pending date.
@pytest.mark.parametrize(
    ("reported", "reason"), [(DISABLED, Reason.SOURCE_DISABLED), (EXPIRED, Reason.SOURCE_EXPIRED)]
)
def test_provisioned_disabled_new_user_is_added_disabled_by_source(reported, reason):
    decision = decide(None, reported, Trigger.PROVISIONING, NOW)
    assert decision.action is Action.ADD
    assert decision.state == disabled(SRC, reason, reported)


def test_provisioned_recreate_disabled_clears_the_pending_date():
    deleted = source_deleted(active(), EARLIER)
    decision = decide(deleted, DISABLED, Trigger.PROVISIONING, NOW)
    assert decision.state == disabled(SRC, Reason.SOURCE_DISABLED, DISABLED)
    assert decision.rule.endswith(":recreated")


def test_provisioned_recreate_of_admin_disabled_keeps_admin_disable_without_pending():
    deleted = source_deleted(disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED), EARLIER)
    decision = decide(deleted, ENABLED, Trigger.PROVISIONING, NOW)
    assert decision.state == disabled(DisabledBy.ADMIN, Reason.ADMIN, ENABLED)


def test_bulk_sync_of_deleted_pending_user_keeps_pending():
    deleted = source_deleted(active(), EARLIER)
    assert decide(deleted, ENABLED, Trigger.BULK, NOW).state == active()
    assert decide(deleted, DISABLED, Trigger.BULK, NOW).state.pending_deletion
