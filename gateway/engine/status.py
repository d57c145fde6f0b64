"""The status rules of SPEC §4: what a sync, a provisioning delete, an administrator and the
cleanup job do to a record's status.

Every function here is pure: it takes the record's current state, what happened and `now`, and
returns the new state (or a `Decision` for syncs). The table of SPEC §4.2 is `decide`, one
branch per row, each branch naming its row in `Decision.rule` so logs, audit events and tests
can say which rule applied.

A record always remembers the last status its source reported (`source_status`), whatever its
own status is: the admin-enable check of SPEC §4.4 needs it for records that stay disabled by
an administrator or by cleanup while the source changes its mind underneath.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gateway.engine.types import DisabledBy, Reason, SourceStatus, Status, Trigger
from gateway.errors import EnableRefused

_REASON_FOR_SOURCE = {
    SourceStatus.DISABLED: Reason.SOURCE_DISABLED,
    SourceStatus.EXPIRED: Reason.SOURCE_EXPIRED,
    SourceStatus.MISSING: Reason.MISSING,
}

# Who may bring a cleanup-marked user back (last row of SPEC §4.2): the user, by authenticating,
# or an administrator acting on that one user. Bulk sync and the daily refresh may not.
_REVIVES_NEVER_USED = frozenset({Trigger.JIT, Trigger.SINGLE})


@dataclass(frozen=True)
class RecordState:
    """A record's status (SPEC §4.1) plus the last status its source reported."""

    status: Status
    source_status: SourceStatus = SourceStatus.ENABLED
    disabled_by: DisabledBy | None = None
    reason: Reason | None = None
    #: Set when the record is pending deletion; a pending record is always disabled.
    pending_deletion_since: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is Status.ACTIVE:
            if self.disabled_by or self.reason or self.pending_deletion_since:
                raise ValueError("an active record has no disabled_by, reason or pending date")
        elif self.disabled_by is None or self.reason is None:
            raise ValueError("a disabled record needs disabled_by and a reason")

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE

    @property
    def pending_deletion(self) -> bool:
        return self.pending_deletion_since is not None


def active(source_status: SourceStatus = SourceStatus.ENABLED) -> RecordState:
    return RecordState(Status.ACTIVE, source_status=source_status)


def disabled(
    by: DisabledBy,
    reason: Reason,
    source_status: SourceStatus,
    pending_since: datetime | None = None,
) -> RecordState:
    return RecordState(Status.DISABLED, source_status, by, reason, pending_since)


class Action(StrEnum):
    #: Create the record with the decision's state.
    ADD = "add"
    #: The record exists: write the decision's state (possibly unchanged) and the source-owned data.
    UPDATE = "update"
    #: No record, and the source says disabled or expired: nothing is written; a bulk job lists it.
    NOT_ADDED = "not_added"
    #: No record, and the source says the user is missing: there is nothing to do.
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    action: Action
    #: The record's state after the sync; None when nothing is written.
    state: RecordState | None
    #: The row of SPEC §4.2 that applied, e.g. "enabled/disabled-by-source".
    rule: str
    #: For NOT_ADDED: why the user was not added.
    not_added_reason: Reason | None = None


def decide(
    current: RecordState | None,
    reported: SourceStatus,
    trigger: Trigger,
    now: datetime,
) -> Decision:
    """Apply SPEC §4.2 to one successful read of one user.

    A failed read never reaches this function: it changes nothing (SPEC §4.2, "nothing").

    Args:
        current: the record's state, or None when the store has no record of the user.
        reported: what the source reported.
        trigger: why the sync runs (cleanup-marked users are revived only by JIT or an admin).
        now: the time of the sync (reserved for rules that date a change; see `source_deleted`).

    Returns:
        The action and the record's new state.
    """
    if trigger is Trigger.PROVISIONING:
        provisioned = _provisioning(current, reported, now)
        if provisioned is not None:
            return provisioned
    if current is None:
        if reported is SourceStatus.ENABLED:
            return Decision(Action.ADD, active(), "enabled/none")
        if reported is SourceStatus.MISSING:
            return Decision(Action.IGNORE, None, "missing/none")
        return Decision(
            Action.NOT_ADDED,
            None,
            f"{reported}/none",
            not_added_reason=_REASON_FOR_SOURCE[reported],
        )

    follows = replace(current, source_status=reported)

    if current.disabled_by is DisabledBy.ADMIN:
        # An administrator's disable outlives whatever the source says; source-owned data and
        # the remembered source status still follow the source.
        return Decision(Action.UPDATE, follows, "any/disabled-by-admin")

    if current.disabled_by is DisabledBy.CLEANUP:
        if reported is SourceStatus.ENABLED and trigger in _REVIVES_NEVER_USED:
            return Decision(Action.UPDATE, active(), "enabled/never-used-pending:revived")
        return Decision(Action.UPDATE, follows, f"{reported}/never-used-pending:stays")

    if current.active:
        if reported is SourceStatus.ENABLED:
            return Decision(Action.UPDATE, follows, "enabled/active")
        return Decision(
            Action.UPDATE,
            disabled(DisabledBy.SOURCE, _REASON_FOR_SOURCE[reported], reported),
            f"{reported}/active",
        )

    # Disabled by the source, pending deletion or not.
    if reported is SourceStatus.ENABLED:
        rule = "enabled/disabled-by-source" + (":pending" if current.pending_deletion else "")
        return Decision(Action.UPDATE, active(), rule)
    if reported is SourceStatus.MISSING:
        return Decision(Action.UPDATE, follows, "missing/disabled")
    # Still disabled or expired: the record stays as it is, but its reason follows the source.
    return Decision(
        Action.UPDATE,
        replace(follows, reason=_REASON_FOR_SOURCE[reported]),
        f"{reported}/disabled-by-source",
    )


def _provisioning(
    current: RecordState | None, reported: SourceStatus, now: datetime
) -> Decision | None:
    """The two rows a SCIM or Entra client's write adds to the table (SPEC §4.2, last paragraph).

    - A client creates its users itself, disabled ones included (Entra ID provisions users
      in scope with `active: false`): a POST answered 201 must leave a resource behind, so a
      new user the client reports disabled is added, disabled by the source. The directory
      row "disabled | none | not added" is for syncs that read a directory.
    - A client that POSTs a user it DELETEd (still pending deletion) re-creates it: the record
      comes back with its gateway-owned data and without the pending date, and then follows
      the ordinary rows (an administrator's disable still holds).

    Returns None when neither row applies.
    """
    if current is None and reported in (SourceStatus.DISABLED, SourceStatus.EXPIRED):
        state = disabled(DisabledBy.SOURCE, _REASON_FOR_SOURCE[reported], reported)
        return Decision(Action.ADD, state, f"{reported}/none:provisioned")
    if (
        current is not None
        and current.source_status is SourceStatus.MISSING
        and current.pending_deletion
        and current.disabled_by is not DisabledBy.CLEANUP
        and reported is not SourceStatus.MISSING
    ):
        revived = decide(
            replace(current, pending_deletion_since=None), reported, Trigger.PROVISIONING, now
        )
        return replace(revived, rule=f"{revived.rule}:recreated")
    return None


def source_deleted(current: RecordState, now: datetime) -> RecordState:
    """A SCIM/Entra DELETE (SPEC §4.2): `missing`, followed at once by pending deletion.

    A record that is already pending deletion keeps its original date, so a repeated DELETE
    does not postpone the purge.
    """
    after = decide(current, SourceStatus.MISSING, Trigger.PROVISIONING, now).state
    assert after is not None  # a record exists, so the decision is always UPDATE
    if after.pending_deletion:
        return after
    return replace(after, pending_deletion_since=now)


def admin_disable(current: RecordState) -> RecordState:
    """SPEC §4.4: manual disable is always allowed; it keeps any pending-deletion date."""
    return disabled(
        DisabledBy.ADMIN, Reason.ADMIN, current.source_status, current.pending_deletion_since
    )


def admin_enable(current: RecordState) -> RecordState:
    """SPEC §4.4: manual enable, refused while the source does not report the user enabled.

    Raises:
        EnableRefused: the source reports the user disabled, expired or missing.
    """
    if current.source_status is not SourceStatus.ENABLED:
        raise EnableRefused(current.source_status.value)
    return active()


def mark_never_used(current: RecordState, now: datetime) -> RecordState:
    """SPEC §5.5: a user who never authenticated is disabled (`never_used`) and pending deletion.

    A record that is already disabled keeps who disabled it and why (the §4.2 rows for records
    disabled by an administrator or by the source apply to it afterwards); it only gains the
    pending-deletion date. A record already pending deletion is returned unchanged.
    """
    if current.pending_deletion:
        return current
    if current.active:
        return disabled(DisabledBy.CLEANUP, Reason.NEVER_USED, current.source_status, now)
    return replace(current, pending_deletion_since=now)
