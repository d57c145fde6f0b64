"""The user service: the one entry point that changes user records.

Syncs of every kind (JIT, single-user, bulk, refresh) and SCIM writes hand it "what the source
reports"; administrators' actions come through it too. It plans with the pure engine
(`gateway.engine.plan`, `gateway.engine.status`), applies the plan in one transaction per unit
of work, and writes an audit event for every status change and every admin action.

Blocking: every method does database I/O. Callers on an event loop run them in a thread pool.
"""

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from gateway.engine import phones as phone_rules
from gateway.engine import status as rules
from gateway.engine.phones import PhoneEntry, PhoneKind
from gateway.engine.plan import (
    Audit,
    CreateUser,
    MarkSynced,
    Outcome,
    SetPhones,
    SetState,
    SourceUser,
    SyncPlan,
    WriteSourceData,
    describe,
    plan_missing,
    plan_report,
    plan_status,
)
from gateway.engine.roles import Permission, allowed
from gateway.engine.status import RecordState
from gateway.engine.types import Reason, Role, SourceStatus, Trigger
from gateway.errors import InvalidInput, NameTaken, NotFound, PermissionDenied, VersionMismatch
from gateway.users.names import name_key
from gateway.users.records import (
    UserView,
    phone_rows,
    phones_of,
    snapshot,
    source_columns,
    state_columns,
    state_of,
    view_of,
    write_phones,
    write_source_data,
    write_state,
)
from store import groups as group_queries
from store import jobs as job_queries
from store import users as queries
from store.db import Store
from store.models import Device, User, new_id

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who acts: an administrator with a role, or the gateway itself (role None)."""

    name: str
    role: Role | None = None

    def require(self, permission: Permission) -> None:
        if self.role is None or not allowed(self.role, permission):
            raise PermissionDenied(f"{self.name} may not {permission.value.replace('_', ' ')}")


SYSTEM = Actor("system")


@dataclass(frozen=True)
class DeviceView:
    id: str
    kind: str
    label: str
    registered_at: datetime


@dataclass(frozen=True)
class SyncResult:
    outcome: Outcome
    user_id: str | None
    state: RecordState | None
    rule: str
    not_synchronized_reason: str | None = None
    #: For a user not added: why, as the engine decided it (source_disabled or source_expired).
    not_added: Reason | None = None
    #: The record as the sync left it (phone lists not read), so a caller that answers with it
    #: (a SCIM write) needs no second read.
    view: UserView | None = None


#: How a bulk run lists a new user it did not add because of the source's user limit (§5.3).
LIMIT_REACHED = "not synchronized, limit reached"
#: How it lists an entry with a value longer than the store keeps (PostgreSQL refuses it).
TOO_LONG = "not synchronized, a value is longer than the store keeps"
#: How it lists an entry whose userName another entry of the same page also has.
NAME_CONFLICT = "not synchronized, another entry of the source has the same user name"


@dataclass
class AddBudget:
    """How many more users a bulk run may add before the source's user limit (SPEC §5.3)."""

    remaining: int


#: Called with a unit of work's session and its results, to write in the same transaction
#: what depends on them (a job's counts and details lists, so they commit with the writes).
Alongside = Callable[[Session, Sequence[SyncResult]], None]


class UserNameTaken(NameTaken):
    def __init__(self, user_name: str) -> None:
        super().__init__("userName", user_name)
        self.user_name = user_name


class UserService:
    """Applies source reports and administrators' actions to the store through the engine."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self._store = store
        self._clock = clock

    # -- syncs ---------------------------------------------------------------------------------

    def apply_report(
        self,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        *,
        expected_version: int | None = None,
    ) -> SyncResult:
        """Apply what a source found about one user (enabled, disabled or expired).

        Adds the user, overwrites source-owned data, applies SPEC §4.2, marks the sync time;
        gateway-owned data is never touched.

        Args:
            expected_version: the version the record must still have (a SCIM If-Match).

        Raises:
            UserNameTaken: a SCIM write would give a second record of the source this userName.
            VersionMismatch: the record's version is not `expected_version`.
        """
        # Two first syncs of the same new user can race to insert it; the loser of the unique
        # constraint retries once and then finds the winner's record to update.
        for attempt in range(2):
            try:
                with self._store.writing() as session:
                    return self._apply_report(session, source_id, report, trigger, expected_version)
            except IntegrityError:
                if attempt == 1:
                    if trigger is Trigger.PROVISIONING:
                        # Two clients created the same userName at once; the winner holds it.
                        raise UserNameTaken(report.user_name) from None
                    raise
        raise AssertionError("unreachable")

    def _apply_report(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        expected_version: int | None,
    ) -> SyncResult:
        now = self._clock()
        user = queries.find_by_external_id(session, source_id, report.external_id, for_update=True)
        if expected_version is not None and (user is None or user.version != expected_version):
            raise VersionMismatch
        self._free_user_name(session, source_id, report, user, trigger, now)
        plan = plan_report(snapshot(user) if user else None, report, trigger, now)
        user = self._apply(session, source_id, user, plan, trigger, now)
        session.flush()
        return self._result(plan, user)

    def apply_batch(
        self,
        source_id: str,
        reports: Sequence[SourceUser],
        trigger: Trigger,
        *,
        seen_in_job: int | None = None,
        budget: AddBudget | None = None,
        alongside: Alongside | None = None,
        defer_disables: bool = False,
    ) -> list[SyncResult]:
        """Apply a page of reports in one transaction (a bulk run, SPEC §5.3).

        Same rules as `apply_report`, one user at a time, but with one query for the page: a
        user whose source-owned data, status and phones are what the store has, and that
        nobody changed since its last sync, is only marked synced. New users past the
        `budget` are not added (`LIMIT_REACHED`).

        Args:
            seen_in_job: the bulk run reading the page, recorded on every record it saw.
            budget: how many users may still be added; decremented as they are.
            alongside: writes that must commit with the page (the job's counts).
            defer_disables: leave every report that would disable an active user unwritten
                (its result is DEFERRED; the record is only marked seen by the run), for the
                mass-disable guard to decide on once the run knows how many there are.

        Returns:
            One result per report, in order.
        """
        # A page that fails is applied again: the budget it spent must be spent only once.
        spent = budget.remaining if budget is not None else 0
        try:
            with self._store.writing() as session:
                results = self._apply_page(
                    session, source_id, reports, trigger, seen_in_job, budget, defer_disables
                )
                if alongside is not None:
                    alongside(session, results)
                return results
        except (IntegrityError, DataError):
            if budget is not None:
                budget.remaining = spent
        # Another writer inserted one of the page's users meanwhile (a JIT sync of a new user,
        # another source entry taking a name), or a value does not fit its column: the page
        # is applied again one user per transaction, so only the user at fault is left out.
        results = []
        for report in reports:
            spent = budget.remaining if budget is not None else 0
            try:
                with self._store.writing() as session:
                    results += self._apply_page(
                        session, source_id, [report], trigger, seen_in_job, budget, defer_disables
                    )
            except (IntegrityError, DataError) as exc:
                if budget is not None:
                    budget.remaining = spent
                results.append(
                    _not_synchronized(
                        NAME_CONFLICT if isinstance(exc, IntegrityError) else TOO_LONG
                    )
                )
        if alongside is not None:
            with self._store.writing() as session:
                alongside(session, results)
        return results

    def _apply_page(
        self,
        session: Session,
        source_id: str,
        reports: Sequence[SourceUser],
        trigger: Trigger,
        seen_in_job: int | None,
        budget: AddBudget | None,
        defer_disables: bool = False,
    ) -> list[SyncResult]:
        now = self._clock()
        rows = {row.external_id: row for row in queries.sync_rows(
            session, source_id, (r.external_id for r in reports)
        )}  # fmt: skip
        results: dict[int, SyncResult] = {}
        quiet: list[str] = []
        slow: list[int] = []
        # Two live entries of one page with one userName (overlapping roots, a directory's
        # duplicate): the first keeps it, the others are listed, and nothing flips.
        owners: dict[str, str] = {}
        for index, report in enumerate(reports):
            owner = owners.setdefault(name_key(report.user_name), report.external_id)
            if owner != report.external_id:
                results[index] = _not_synchronized(NAME_CONFLICT)
                continue
            row = rows.get(report.external_id)
            state = _unchanged(row, report, trigger, now) if row is not None else None
            if row is not None and state is not None:
                quiet.append(row.id)
                results[index] = SyncResult(Outcome.UNCHANGED, row.id, state, "unchanged")
            else:
                slow.append(index)
        queries.mark_synced(session, quiet, now, seen_in_job)
        if slow:
            users = queries.users_by_external_ids(
                session, source_id, (reports[i].external_id for i in slow)
            )
            new_names = {name_key(reports[i].user_name) for i in slow}
            taken = queries.taken_name_keys(session, source_id, new_names)
            added = _NewUsers(source_id, trigger, now, seen_in_job)
            deferred: list[str] = []
            for index in slow:
                report = reports[index]
                user = users.get(report.external_id)
                if name_key(report.user_name) in taken:
                    self._free_user_name(session, source_id, report, user, trigger, now)
                plan = plan_report(snapshot(user) if user else None, report, trigger, now)
                if defer_disables and plan.outcome is Outcome.DISABLED and user is not None:
                    deferred.append(user.id)
                    results[index] = SyncResult(
                        Outcome.DEFERRED, user.id, state_of(user), "deferred"
                    )
                    continue
                if plan.outcome is Outcome.ADDED and budget is not None:
                    if budget.remaining <= 0:
                        results[index] = _not_synchronized(LIMIT_REACHED)
                        continue
                    budget.remaining -= 1
                if plan.outcome is Outcome.ADDED and user is None:
                    results[index] = added.add(plan)
                    continue
                user = self._apply(session, source_id, user, plan, trigger, now)
                if user is not None:
                    user.seen_in_job = seen_in_job
                results[index] = self._result(plan, user, view=False)
            session.flush()
            queries.insert_users(session, added.users, added.phones, added.events)
            if seen_in_job is not None:
                job_queries.mark_seen(session, deferred, seen_in_job)
        return [results[i] for i in range(len(reports))]

    def apply_missing_batch(
        self,
        source_id: str,
        external_ids: Sequence[str],
        trigger: Trigger,
        *,
        alongside: Alongside | None = None,
    ) -> list[SyncResult]:
        """Apply "gone from the source" to a page of stored records, in one transaction."""
        with self._store.writing() as session:
            now = self._clock()
            users = queries.users_by_external_ids(session, source_id, external_ids)
            results = []
            for external_id in external_ids:
                user = users.get(external_id)
                plan = plan_missing(snapshot(user) if user else None, trigger, now)
                user = self._apply(session, source_id, user, plan, trigger, now)
                results.append(self._result(plan, user, view=False))
            session.flush()
            if alongside is not None:
                alongside(session, results)
            return results

    def apply_held(
        self,
        source_id: str,
        holds: Sequence[tuple[str, SourceStatus]],
        trigger: Trigger,
        *,
        read_before: datetime,
        alongside: Alongside | None = None,
    ) -> list[SyncResult]:
        """Disable users whose disable the mass-disable guard held, now that a super admin
        confirmed it (SPEC §5.3), in one transaction.

        Args:
            holds: (user id, what the source reported: disabled, expired or missing).
            read_before: when the held run read them; a record synced since (a JIT sync
                read it again) is left as that newer read made it (IGNORED).
        """
        with self._store.writing() as session:
            now = self._clock()
            results = []
            for user_id, status in holds:
                user = queries.get_user(session, user_id, for_update=True)
                if (
                    user is None
                    or user.source_id != source_id
                    or (user.last_sync_at is not None and user.last_sync_at > read_before)
                ):
                    results.append(SyncResult(Outcome.IGNORED, user_id, None, "read since"))
                    continue
                plan = plan_status(snapshot(user), status, trigger, now)
                user = self._apply(session, source_id, user, plan, trigger, now)
                results.append(self._result(plan, user, view=False))
            session.flush()
            if alongside is not None:
                alongside(session, results)
            return results

    def apply_missing(self, source_id: str, external_id: str, trigger: Trigger) -> SyncResult:
        """Apply "this user is gone" (deleted upstream or out of scope) to a stored record."""
        with self._store.writing() as session:
            now = self._clock()
            user = queries.find_by_external_id(session, source_id, external_id, for_update=True)
            plan = plan_missing(snapshot(user) if user else None, trigger, now)
            user = self._apply(session, source_id, user, plan, trigger, now)
            session.flush()
            return self._result(plan, user)

    def _free_user_name(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        user: User | None,
        trigger: Trigger,
        now: datetime,
    ) -> None:
        """Another record of this source holds the reported userName.

        A SCIM client must choose another name (RFC 7644 §3.3: 409 uniqueness), unless it
        deleted the holder itself. A directory has recycled the name for a new entry (a new
        immutable id): the old entry is gone, so its record is `missing`. Either way the old
        record's name key is set aside for the new record.
        """
        key = name_key(report.user_name)
        if user is not None and user.user_name_key == key:
            return  # the record already holds its name (the usual sync): nothing to look up
        holder = queries.find_by_user_name_key(session, source_id, key)
        if holder is None or (user is not None and holder.id == user.id):
            return
        if trigger is Trigger.PROVISIONING and holder.source_status != SourceStatus.MISSING:
            raise UserNameTaken(report.user_name)
        plan = plan_missing(snapshot(holder), trigger, now)
        self._apply(session, source_id, holder, plan, trigger, now)
        # Kept within the column's 255 characters: 200 of the name, the marker and a UUID.
        holder.user_name_key = f"{key[:200]}#replaced:{holder.id}"
        session.flush()

    def _apply(
        self,
        session: Session,
        source_id: str,
        user: User | None,
        plan: SyncPlan,
        trigger: Trigger,
        now: datetime,
    ) -> User | None:
        # The ETag moves only when the resource changed, not when a sync found nothing new.
        bump_version = False
        for op in plan.operations:
            match op:
                case CreateUser(data=data, state=state):
                    user = User(
                        # The id is given here, not by the flush, so the audit event below
                        # needs no flush and a page of new users is inserted in one batch.
                        id=new_id(),
                        source_id=source_id,
                        external_id=data.external_id,
                        created_at=now,
                        updated_at=now,
                        status_changed_at=now,
                        version=1,
                    )
                    write_source_data(user, data)
                    write_state(user, state, now)
                    session.add(user)
                case WriteSourceData(data=data):
                    assert user is not None
                    write_source_data(user, data)
                    bump_version = True
                case SetState(new=state):
                    assert user is not None
                    write_state(user, state, now)
                    bump_version = True
                case SetPhones(kind=kind, entries=entries):
                    assert user is not None
                    write_phones(user, kind, entries)
                    bump_version = True
                case MarkSynced(at=at):
                    assert user is not None
                    user.last_sync_at = at
                    user.sync_claim_until = None
                case Audit(action=action, details=details):
                    assert user is not None
                    queries.add_audit_event(
                        session,
                        at=now,
                        actor=f"sync:{trigger.value}",
                        action=action,
                        source_id=source_id,
                        user_id=user.id,
                        user_name=user.user_name,
                        details=details,
                    )
        if bump_version and user is not None:
            _touch(user, now)
        return user

    @staticmethod
    def _result(plan: SyncPlan, user: User | None, *, view: bool = True) -> SyncResult:
        return SyncResult(
            plan.outcome,
            user.id if user else None,
            plan.decision.state,
            plan.decision.rule,
            plan.not_synchronized_reason,
            plan.decision.not_added_reason,
            view_of(user, phones=False) if user and view else None,
        )

    def provisioning_delete(
        self,
        source_id: str,
        user_id: str,
        *,
        expected_version: int | None = None,
        hard: bool = False,
    ) -> None:
        """A SCIM/Entra DELETE: `missing` and pending deletion at once (SPEC §4.2), or, for a
        source with `hard_delete`, the record is removed now (the audit event stays).

        Raises:
            NotFound: no such user in this source, or one the source deleted already.
            VersionMismatch: the record's version is not `expected_version`.
        """
        with self._store.writing() as session:
            user = self._user_of_source(session, source_id, user_id)
            if user.source_status == SourceStatus.MISSING:
                raise NotFound(f"no user with id {user_id}")
            if expected_version is not None and user.version != expected_version:
                raise VersionMismatch
            if hard:
                self._audit(session, user, "provisioning", "user.purged", {"rule": "hard_delete"})
                session.delete(user)
                return
            now = self._clock()
            old = state_of(user)
            new = rules.source_deleted(old, now)
            # The user is gone from its source, and so from the source's groups (a re-created
            # user is added to them again by the client, as Entra ID does).
            left = group_queries.leave_all_groups(session, user.id)
            self._set_state(
                session,
                user,
                old,
                new,
                actor="provisioning",
                action="user.deleted",
                comment=f"removed from {left} group(s)" if left else None,
            )

    # -- cleanup (SPEC §5.5) -----------------------------------------------------------------

    def mark_never_used(
        self, user_ids: Sequence[str], *, alongside: Alongside | None = None
    ) -> list[SyncResult]:
        """Disable (`never_used`) and mark pending deletion users who never authenticated.

        A user who authenticated meanwhile, or is pending deletion already, is left alone
        (the result's outcome is UNCHANGED); the others are DISABLED.
        """
        with self._store.writing() as session:
            now = self._clock()
            results = []
            for user_id in user_ids:
                user = queries.get_user(session, user_id, for_update=True)
                if user is None or user.last_auth_at is not None or user.pending_deletion_since:
                    results.append(SyncResult(Outcome.IGNORED, user_id, None, "skipped"))
                    continue
                old = state_of(user)
                self._set_state(
                    session,
                    user,
                    old,
                    rules.mark_never_used(old, now),
                    actor="cleanup",
                    action="user.marked_never_used",
                )
                # A user disabled already (by its source or an administrator) only gains
                # the pending-deletion date: updated, not newly disabled.
                outcome = Outcome.DISABLED if old.active else Outcome.UPDATED
                results.append(SyncResult(outcome, user.id, state_of(user), "cleanup"))
            session.flush()
            if alongside is not None:
                alongside(session, results)
            return results

    def purge(
        self,
        user_ids: Sequence[str],
        *,
        before: datetime,
        alongside: Callable[[Session, Sequence[tuple[str, str]]], None] | None = None,
    ) -> list[tuple[str, str]]:
        """Delete users pending deletion since `before` or earlier; the audit log keeps each one.

        Returns:
            (user_name, external_id) of every user deleted.
        """
        with self._store.writing() as session:
            deleted = []
            for user_id in user_ids:
                user = queries.get_user(session, user_id, for_update=True)
                since = user.pending_deletion_since if user else None
                if user is None or since is None or since > before:
                    continue  # revived (or deleted) since the candidates were listed
                self._audit(
                    session,
                    user,
                    "cleanup",
                    "user.purged",
                    {"rule": "pending_deletion_expired", "pending_since": since.isoformat()},
                )
                deleted.append((user.user_name, user.external_id))
                session.delete(user)
            session.flush()
            if alongside is not None:
                alongside(session, deleted)
            return deleted

    # -- administrators --------------------------------------------------------------------------

    def get(self, actor: Actor, user_id: str) -> UserView:
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            return view_of(self._user(session, user_id))

    def disable(self, actor: Actor, user_id: str, *, comment: str | None = None) -> UserView:
        """Manual disable: always allowed (SPEC §4.4)."""
        actor.require(Permission.DISABLE_USER)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            old = state_of(user)
            self._set_state(
                session,
                user,
                old,
                rules.admin_disable(old),
                actor=actor.name,
                action="user.disabled_by_admin",
                comment=comment,
            )
            return view_of(user)

    def enable(self, actor: Actor, user_id: str, *, comment: str | None = None) -> UserView:
        """Manual enable (SPEC §4.4).

        Raises:
            EnableRefused: the source reports the user disabled, expired or missing.
        """
        actor.require(Permission.ENABLE_USER)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            old = state_of(user)
            new = rules.admin_enable(old)
            self._set_state(
                session,
                user,
                old,
                new,
                actor=actor.name,
                action="user.enabled_by_admin",
                comment=comment,
            )
            return view_of(user)

    def edit_phone(
        self, actor: Actor, user_id: str, kind: PhoneKind, index: int, number: str
    ) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.edited", lambda e: phone_rules.admin_edit(e, index, number)
        )

    def add_phone(self, actor: Actor, user_id: str, kind: PhoneKind, number: str) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.added", lambda e: phone_rules.admin_add(e, number)
        )

    def delete_phone(self, actor: Actor, user_id: str, kind: PhoneKind, index: int) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.deleted", lambda e: phone_rules.admin_delete(e, index)
        )

    def reset_phone(self, actor: Actor, user_id: str, kind: PhoneKind, index: int) -> UserView:
        return self._change_phones(
            actor, user_id, kind, "phone.reset", lambda e: phone_rules.admin_reset(e, index)
        )

    def _change_phones(
        self,
        actor: Actor,
        user_id: str,
        kind: PhoneKind,
        action: str,
        change: Callable[[tuple[PhoneEntry, ...]], tuple[PhoneEntry, ...]],
    ) -> UserView:
        actor.require(Permission.EDIT_PHONES)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            before = phones_of(user)[kind]
            try:
                after = change(before)
            except IndexError as exc:
                raise InvalidInput(f"{kind.value}_phones", "no phone number at that index") from exc
            except phone_rules.InvalidPhoneNumber as exc:
                raise InvalidInput(f"{kind.value}_phones", str(exc)) from exc
            write_phones(user, kind, after)
            _touch(user, self._clock())
            self._audit(session, user, actor.name, action, {"kind": kind.value})
            return view_of(user)

    def set_notes(self, actor: Actor, user_id: str, notes: str | None) -> UserView:
        actor.require(Permission.EDIT_NOTES)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            user.admin_notes = notes
            _touch(user, self._clock())
            self._audit(session, user, actor.name, "user.notes_changed", {})
            return view_of(user)

    def register_device(
        self, actor: Actor, user_id: str, *, kind: str, label: str, data: Mapping[str, Any]
    ) -> str:
        """Register an authenticator for a user (gateway-owned data). Returns its id."""
        actor.require(Permission.MANAGE_DEVICES)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            device = Device(kind=kind, label=label, registered_at=self._clock(), data=dict(data))
            user.devices.append(device)
            session.flush()
            self._audit(session, user, actor.name, "device.registered", {"kind": kind})
            return device.id

    def devices(self, actor: Actor, user_id: str) -> list[DeviceView]:
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            user = self._user(session, user_id)
            return [DeviceView(d.id, d.kind, d.label, d.registered_at) for d in user.devices]

    def remove_device(self, actor: Actor, user_id: str, device_id: str) -> None:
        """Remove a registered authenticator (gateway-owned data).

        Raises:
            NotFound: no such user, or the user has no such device.
        """
        actor.require(Permission.MANAGE_DEVICES)
        with self._store.writing() as session:
            user = self._user(session, user_id)
            device = next((d for d in user.devices if d.id == device_id), None)
            if device is None:
                raise NotFound(f"user {user_id} has no device {device_id}")
            user.devices.remove(device)
            self._audit(session, user, actor.name, "device.removed", {"kind": device.kind})

    def find(self, actor: Actor, source_id: str, user_name: str) -> UserView | None:
        """The stored user of a source with this user name (case-insensitive), if any."""
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            user = queries.find_by_user_name_key(session, source_id, name_key(user_name))
            return view_of(user) if user else None

    def audit_action(
        self, actor: Actor, user_id: str, action: str, details: Mapping[str, Any]
    ) -> None:
        """Record an administrator's action on a user that changed nothing by itself."""
        with self._store.writing() as session:
            user = queries.get_user(session, user_id)
            if user is not None:
                self._audit(session, user, actor.name, action, details)

    # -- helpers ---------------------------------------------------------------------------------

    def _user(self, session: Session, user_id: str) -> User:
        user = queries.get_user(session, user_id, for_update=True)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    def _user_of_source(self, session: Session, source_id: str, user_id: str) -> User:
        user = self._user(session, user_id)
        if user.source_id != source_id:
            # A user of another source does not exist as far as this source is concerned.
            raise NotFound(f"no user with id {user_id}")
        return user

    def _set_state(
        self,
        session: Session,
        user: User,
        old: RecordState,
        new: RecordState,
        *,
        actor: str,
        action: str,
        comment: str | None = None,
    ) -> None:
        now = self._clock()
        write_state(user, new, now)
        _touch(user, now)
        details = {"from": describe(old), "to": describe(new), "comment": comment}
        self._audit(session, user, actor, action, details)

    def _audit(
        self, session: Session, user: User, actor: str, action: str, details: Mapping[str, Any]
    ) -> None:
        queries.add_audit_event(
            session,
            at=self._clock(),
            actor=actor,
            action=action,
            source_id=user.source_id,
            user_id=user.id,
            user_name=user.user_name,
            details=details,
        )


class _NewUsers:
    """New users of a page as rows, inserted in three statements.

    The same operations `UserService._apply` carries out on an ORM object one attribute at a
    time (CreateUser, SetPhones, MarkSynced, Audit), written as rows: a page of new users
    then costs three batched INSERTs instead of an ORM flush of every object.
    """

    def __init__(
        self, source_id: str, trigger: Trigger, now: datetime, seen_in_job: int | None
    ) -> None:
        self._source_id = source_id
        self._trigger = trigger
        self._now = now
        self._seen_in_job = seen_in_job
        self.users: list[dict[str, Any]] = []
        self.phones: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._random = b""

    def _new_id(self) -> str:
        """A random (version 4) UUID, like `store.models.new_id`, drawn from one read of the
        system's randomness per hundred users: a read per user let the GIL go each time."""
        if not self._random:
            self._random = os.urandom(16 * 100)
        raw, self._random = self._random[:16], self._random[16:]
        return str(uuid.UUID(bytes=raw, version=4))

    def add(self, plan: SyncPlan) -> SyncResult:
        now = self._now
        row: dict[str, Any] = {}
        for op in plan.operations:
            match op:
                case CreateUser(data=data, state=state):
                    row = {
                        "id": self._new_id(),
                        "source_id": self._source_id,
                        "external_id": data.external_id,
                        **source_columns(data),
                        **state_columns(state),
                        "created_at": now,
                        "updated_at": now,
                        "status_changed_at": now,
                        "last_sync_at": None,
                        "last_auth_at": None,
                        "admin_notes": None,
                        "sync_claim_until": None,
                        "version": 1,
                        "seen_in_job": self._seen_in_job,
                    }
                    self.users.append(row)
                case SetPhones(kind=kind, entries=entries):
                    self.phones += phone_rows(row["id"], kind, entries)
                case MarkSynced(at=at):
                    row["last_sync_at"] = at
                case Audit(action=action, details=details):
                    self.events.append(
                        {
                            "at": now,
                            "actor": f"sync:{self._trigger.value}",
                            "action": action,
                            "source_id": self._source_id,
                            "user_id": row["id"],
                            "user_name": row["user_name"],
                            "details": dict(details),
                        }
                    )
                case _:
                    raise AssertionError(f"a new user's plan holds {op!r}")
        return SyncResult(
            plan.outcome, row["id"], plan.decision.state, plan.decision.rule, None, None
        )


def _unchanged(row: Any, report: SourceUser, trigger: Trigger, now: datetime) -> RecordState | None:
    """The record's state when a sync of `report` would only mark it synced, else None.

    That is when the source-owned data is what the store has (its digest covers the status),
    nothing changed the record since its last sync (an administrator's phone edit or status
    change moves `updated_at` past it, and is then planned in full), and the engine keeps the
    state as it is.
    """
    if row.source_digest != report.digest():
        return None
    if row.last_sync_at is None or row.updated_at > row.last_sync_at:
        return None
    state = state_of(row)
    return state if rules.decide(state, report.status, trigger, now).state == state else None


def _not_synchronized(reason: str) -> SyncResult:
    return SyncResult(Outcome.NOT_SYNCHRONIZED, None, None, "not_added", reason)


def _touch(user: User, now: datetime) -> None:
    """The resource changed: a new ETag and meta.lastModified (RFC 7644 §3.14, RFC 7643 §3.1)."""
    user.version += 1
    user.updated_at = now
