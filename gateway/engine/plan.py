"""Sync planning: what one successful read of one user changes, as a list of small values.

`plan_report` and `plan_missing` are pure: they take a snapshot of the stored record (or None),
what the source says and `now`, and return a `SyncPlan` — the §4.2 decision, the operations
that carry it out, and how a bulk job counts the user. `gateway.users.service` applies the
operations to the store; tests compare the lists.

Gateway-owned data (devices, methods, notes, timestamps other than last_sync_at, manual phone
numbers) appears in no operation, so no sync can touch it.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime
from enum import StrEnum

from gateway.engine.phones import PhoneEntry, PhoneKind, sync_phones
from gateway.engine.status import Action, Decision, RecordState, decide
from gateway.engine.types import Reason, SourceStatus, Status, Trigger


@dataclass(frozen=True)
class Email:
    value: str
    type: str | None = None
    primary: bool = False


@dataclass(frozen=True)
class SourceUser:
    """What a source says about one user now: the source-owned data of SPEC §3."""

    external_id: str
    user_name: str
    status: SourceStatus
    dn: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    emails: tuple[Email, ...] = ()
    groups: tuple[str, ...] = ()
    #: The configured policy attributes, as sorted (name, values) pairs so the value is hashable.
    policy: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Directory phone values, as formatted upstream; None when no attribute is mapped.
    sms_phones: tuple[str, ...] | None = None
    voice_phones: tuple[str, ...] | None = None
    scim_external_id: str | None = None
    #: Active Directory's userPrincipalName, for `user@domain` binds.
    upn: str | None = None
    #: argon2 hash of a password a SCIM client set (never a directory password, SPEC §2).
    password_hash: str | None = None
    #: A SCIM client's resource as it sent it (canonical JSON, so the value stays hashable).
    document: str | None = None

    def __post_init__(self) -> None:
        if self.status is SourceStatus.MISSING:
            raise ValueError("a missing user has no data: use plan_missing")
        if not self.external_id or not self.user_name:
            raise ValueError("external_id and user_name are required")

    def digest(self) -> str:
        """A stable digest of the source-owned data (status included), to detect change.

        The canonical JSON of every field, as `dataclasses.asdict` would give it, built by
        hand: asdict deep-copies every value, which made the digest the largest cost of a
        bulk run that finds nothing new.
        """
        fields = {name: getattr(self, name) for name in _FIELDS}
        fields["emails"] = [
            {"value": e.value, "type": e.type, "primary": e.primary} for e in self.emails
        ]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def phones(self, kind: PhoneKind) -> tuple[str, ...] | None:
        return self.sms_phones if kind is PhoneKind.SMS else self.voice_phones


_FIELDS = tuple(f.name for f in dataclass_fields(SourceUser))


@dataclass(frozen=True)
class StoredUser:
    """The parts of a stored record that planning needs."""

    id: str
    user_name: str
    state: RecordState
    source_digest: str
    phones: Mapping[PhoneKind, tuple[PhoneEntry, ...]] = field(default_factory=dict)


class Outcome(StrEnum):
    """How a bulk job counts one user (SPEC §5.3)."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DISABLED = "disabled"
    NOT_SYNCHRONIZED = "not_synchronized"
    #: Missing upstream and unknown here: nothing to count.
    IGNORED = "ignored"
    #: A disable the run holds back until it knows how many it would make (the mass-disable
    #: guard, SPEC §5.3): nothing was written, nothing is counted yet.
    DEFERRED = "deferred"


# -- operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateUser:
    data: SourceUser
    state: RecordState


@dataclass(frozen=True)
class WriteSourceData:
    data: SourceUser


@dataclass(frozen=True)
class SetState:
    old: RecordState
    new: RecordState


@dataclass(frozen=True)
class SetPhones:
    kind: PhoneKind
    entries: tuple[PhoneEntry, ...]


@dataclass(frozen=True)
class MarkSynced:
    at: datetime


@dataclass(frozen=True)
class Audit:
    action: str
    details: Mapping[str, str | None]


Operation = CreateUser | WriteSourceData | SetState | SetPhones | MarkSynced | Audit


@dataclass(frozen=True)
class SyncPlan:
    decision: Decision
    outcome: Outcome
    operations: tuple[Operation, ...]
    #: For NOT_SYNCHRONIZED: the reason, as a bulk job's details list shows it.
    not_synchronized_reason: str | None = None


def _state_audit(old: RecordState | None, new: RecordState, rule: str) -> Audit:
    return Audit(
        "user.status_changed",
        {
            "from": describe(old),
            "to": describe(new),
            "rule": rule,
            "source_status": new.source_status.value,
        },
    )


def _set_state(old: RecordState, new: RecordState, rule: str) -> list[Operation]:
    """Write the new state; audit it when the gateway status moved (not only `source_status`)."""
    ops: list[Operation] = [SetState(old, new)]
    if replace(old, source_status=new.source_status) != new:
        ops.append(_state_audit(old, new, rule))
    return ops


def describe(state: RecordState | None) -> str | None:
    """A record state in words, for audit events and logs."""
    if state is None:
        return None
    if state.active:
        return "active"
    text = f"disabled by {state.disabled_by} ({state.reason})"
    return text + (", pending deletion" if state.pending_deletion else "")


def _outcome(old: RecordState, new: RecordState, changed: bool) -> Outcome:
    if old.status is Status.ACTIVE and new.status is Status.DISABLED:
        return Outcome.DISABLED
    return Outcome.UPDATED if changed else Outcome.UNCHANGED


def plan_report(
    current: StoredUser | None, report: SourceUser, trigger: Trigger, now: datetime
) -> SyncPlan:
    """Plan the sync of a user the source found (enabled, disabled or expired)."""
    decision = decide(current.state if current else None, report.status, trigger, now)

    if decision.action is Action.NOT_ADDED:
        assert decision.not_added_reason is not None
        return SyncPlan(
            decision,
            Outcome.NOT_SYNCHRONIZED,
            (),
            not_synchronized_reason=_NOT_ADDED_TEXT[decision.not_added_reason],
        )

    assert decision.state is not None
    if decision.action is Action.ADD:
        ops: list[Operation] = [CreateUser(report, decision.state)]
        ops += [
            SetPhones(kind, entries)
            for kind in PhoneKind
            if (entries := sync_phones((), report.phones(kind)))
        ]
        ops += [MarkSynced(now), Audit("user.added", {"rule": decision.rule})]
        return SyncPlan(decision, Outcome.ADDED, tuple(ops))

    assert current is not None
    ops = []
    data_changed = report.digest() != current.source_digest
    if data_changed:
        ops.append(WriteSourceData(report))
    for kind in PhoneKind:
        old_entries = current.phones.get(kind, ())
        new_entries = sync_phones(old_entries, report.phones(kind))
        if new_entries != old_entries:
            ops.append(SetPhones(kind, new_entries))
    state_changed = decision.state != current.state
    if state_changed:
        ops += _set_state(current.state, decision.state, decision.rule)
    ops.append(MarkSynced(now))
    changed = data_changed or state_changed or any(isinstance(op, SetPhones) for op in ops)
    return SyncPlan(decision, _outcome(current.state, decision.state, changed), tuple(ops))


def plan_missing(current: StoredUser | None, trigger: Trigger, now: datetime) -> SyncPlan:
    """Plan the sync of a user the source no longer has (deleted or out of scope)."""
    decision = decide(current.state if current else None, SourceStatus.MISSING, trigger, now)
    if current is None:
        return SyncPlan(decision, Outcome.IGNORED, ())
    assert decision.state is not None
    ops: list[Operation] = []
    if decision.state != current.state:
        ops += _set_state(current.state, decision.state, decision.rule)
    ops.append(MarkSynced(now))
    return SyncPlan(decision, _outcome(current.state, decision.state, bool(ops[:-1])), tuple(ops))


def plan_status(
    current: StoredUser, status: SourceStatus, trigger: Trigger, now: datetime
) -> SyncPlan:
    """Plan a status a source reported earlier, without its data: a disable the mass-disable
    guard held and a super admin then confirmed (SPEC §5.3).

    The run's source data was not kept, so the record is not marked synced: its digest still
    differs from the source's, and the next sync writes the data.
    """
    if status is SourceStatus.MISSING:
        return plan_missing(current, trigger, now)
    decision = decide(current.state, status, trigger, now)
    assert decision.state is not None  # a stored record is never "not added"
    ops: list[Operation] = []
    if decision.state != current.state:
        ops += _set_state(current.state, decision.state, decision.rule)
    return SyncPlan(decision, _outcome(current.state, decision.state, bool(ops)), tuple(ops))


_NOT_ADDED_TEXT = {
    Reason.SOURCE_DISABLED: "disabled in the source",
    Reason.SOURCE_EXPIRED: "expired in the source",
}
