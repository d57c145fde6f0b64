"""The user service: the one entry point that changes user records from their sources.

Syncs of every kind (JIT, single-user, bulk, refresh), SCIM writes and the daily cleanup hand
it "what the source reports". It plans with the pure engine (`gateway.engine.plan`,
`gateway.engine.status`), has `gateway.users.applier` carry the plan out, and writes an audit
event for every status change. Administrators' actions on one user are
`gateway.users.admin`'s.

The caller owns the unit of work (SQLAlchemy 2.0's rule): every method takes the session it
runs in and never commits, so a job writes its counts in the transaction of the page they
count, and a SCIM write reads what it needs in the transaction it writes in. Where a write may
lose a race to another writer, the service retries inside a savepoint of that session.

Blocking: every method does database I/O. Callers on an event loop run them in a thread pool.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from gateway.engine import status as rules
from gateway.engine.plan import (
    Outcome,
    SourceUser,
    SyncPlan,
    describe,
    plan_missing,
    plan_report,
    plan_status,
)
from gateway.engine.roles import Permission, allowed
from gateway.engine.status import RecordState
from gateway.engine.types import Reason, Role, SourceStatus, Trigger
from gateway.errors import NameTaken, NotFound, PermissionDenied, VersionMismatch
from gateway.users.applier import Applier, audit, touch
from gateway.users.names import name_key
from gateway.users.records import UserView, snapshot, state_of, view_of, write_state
from store import groups as group_queries
from store import jobs as job_queries
from store import users as queries
from store.models import User

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


class UserNameTaken(NameTaken):
    def __init__(self, user_name: str) -> None:
        super().__init__("userName", user_name)
        self.user_name = user_name


class UserService:
    """Applies source reports and cleanup to user records through the engine, in the caller's
    session."""

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self._clock = clock

    # -- syncs ---------------------------------------------------------------------------------

    def apply_report(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        *,
        expected_version: int | None = None,
        view: bool = True,
    ) -> SyncResult:
        """Apply what a source found about one user (enabled, disabled or expired).

        Adds the user, overwrites source-owned data, applies SPEC §4.2, marks the sync time;
        gateway-owned data is never touched.

        Args:
            expected_version: the version the record must still have (a SCIM If-Match).
            view: the result carries the record's view (`SyncResult.view`). Without it, a
                report that changes nothing costs one locked row read and one UPDATE of the
                sync time: how most JIT re-reads of a known user end.

        Raises:
            UserNameTaken: a SCIM write would give a second record of the source this userName.
            VersionMismatch: the record's version is not `expected_version`.
        """
        # Two first syncs of the same new user can race to insert it; the loser of the unique
        # constraint retries once and then finds the winner's record to update.
        for attempt in range(2):
            try:
                with session.begin_nested():
                    return self._apply_report(
                        session, source_id, report, trigger, expected_version, view
                    )
            except IntegrityError:
                if attempt == 1:
                    if trigger is Trigger.PROVISIONING:
                        # Two clients created the same userName at once; the winner holds it.
                        raise UserNameTaken(report.user_name) from None
                    raise
        raise AssertionError("unreachable")

    def unchanged(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        *,
        lock: bool = False,
        now: datetime | None = None,
    ) -> SyncResult | None:
        """What a sync of `report` would be if it only restarted the window: the UNCHANGED
        result, or None when the report changes something or names no record. Writes
        nothing. Without `lock` the row is read unlocked: the JIT path marks the sync in a
        batch after (a change committed between this read and that mark keeps its
        `updated_at` after the mark's time, so the next sync plans it in full)."""
        rows = queries.sync_rows(session, source_id, [report.external_id], lock=lock)
        when = self._clock() if now is None else now
        state = _unchanged(rows[0], report, trigger, when) if rows else None
        if state is None:
            return None
        return SyncResult(Outcome.UNCHANGED, rows[0].id, state, "unchanged")

    def _mark_if_unchanged(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        now: datetime,
    ) -> SyncResult | None:
        """The sync of a stored user whose report changes nothing, as `apply_batch` does it
        for a page: the locked row compared with the report (`_unchanged`), then the sync
        time alone written. None when the report changes something or names no record."""
        quiet = self.unchanged(session, source_id, report, trigger, lock=True, now=now)
        if quiet is not None:
            assert quiet.user_id is not None
            queries.mark_synced(session, [quiet.user_id], now, None)
        return quiet

    def _apply_report(
        self,
        session: Session,
        source_id: str,
        report: SourceUser,
        trigger: Trigger,
        expected_version: int | None,
        view: bool,
    ) -> SyncResult:
        now = self._clock()
        if not view and expected_version is None:
            quiet = self._mark_if_unchanged(session, source_id, report, trigger, now)
            if quiet is not None:
                return quiet
        user = queries.find_by_external_id(session, source_id, report.external_id, for_update=True)
        if expected_version is not None and (user is None or user.version != expected_version):
            raise VersionMismatch
        applier = Applier(session, source_id, trigger, now)
        self._free_user_name(applier, session, source_id, report, user, trigger, now)
        plan = plan_report(snapshot(user) if user else None, report, trigger, now)
        user = applier.apply(plan, user)
        session.flush()
        return _result(plan, user, view=view)

    def apply_batch(
        self,
        session: Session,
        source_id: str,
        reports: Sequence[SourceUser],
        trigger: Trigger,
        *,
        seen_in_job: int | None = None,
        budget: AddBudget | None = None,
        defer_disables: bool = False,
    ) -> list[SyncResult]:
        """Apply a page of reports (a bulk run, SPEC §5.3).

        Same rules as `apply_report`, one user at a time, but with one query for the page: a
        user whose source-owned data, status and phones are what the store has, and that
        nobody changed since its last sync, is only marked synced. New users past the
        `budget` are not added (`LIMIT_REACHED`).

        Args:
            seen_in_job: the bulk run reading the page, recorded on every record it saw.
            budget: how many users may still be added; decremented as they are.
            defer_disables: leave every report that would disable an active user unwritten
                (its result is DEFERRED; the record is only marked seen by the run), for the
                mass-disable guard to decide on once the run knows how many there are.

        Returns:
            One result per report, in order.
        """
        # A page that fails is applied again: the budget it spent must be spent only once.
        spent = budget.remaining if budget is not None else 0
        try:
            with session.begin_nested():
                return self._apply_page(
                    session, source_id, reports, trigger, seen_in_job, budget, defer_disables
                )
        except (IntegrityError, DataError):
            if budget is not None:
                budget.remaining = spent
        # Another writer inserted one of the page's users meanwhile (a JIT sync of a new user,
        # another source entry taking a name), or a value does not fit its column: the page
        # is applied again one user per savepoint, so only the user at fault is left out.
        results = []
        for report in reports:
            spent = budget.remaining if budget is not None else 0
            try:
                with session.begin_nested():
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
            applier = Applier(session, source_id, trigger, now, seen_in_job=seen_in_job)
            deferred: list[str] = []
            for index in slow:
                report = reports[index]
                user = users.get(report.external_id)
                if name_key(report.user_name) in taken:
                    self._free_user_name(applier, session, source_id, report, user, trigger, now)
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
                    results[index] = _result(plan, None, user_id=applier.add(plan))
                    continue
                user = applier.apply(plan, user)
                if user is not None:
                    user.seen_in_job = seen_in_job
                results[index] = _result(plan, user, view=False)
            session.flush()
            applier.insert_added()
            if seen_in_job is not None:
                job_queries.mark_seen(session, deferred, seen_in_job)
        return [results[i] for i in range(len(reports))]

    def apply_missing_batch(
        self, session: Session, source_id: str, external_ids: Sequence[str], trigger: Trigger
    ) -> list[SyncResult]:
        """Apply "gone from the source" to a page of stored records."""
        now = self._clock()
        applier = Applier(session, source_id, trigger, now)
        users = queries.users_by_external_ids(session, source_id, external_ids)
        results = []
        for external_id in external_ids:
            user = users.get(external_id)
            plan = plan_missing(snapshot(user) if user else None, trigger, now)
            results.append(_result(plan, applier.apply(plan, user), view=False))
        session.flush()
        return results

    def apply_held(
        self,
        session: Session,
        source_id: str,
        holds: Sequence[tuple[str, SourceStatus]],
        trigger: Trigger,
        *,
        read_before: datetime,
    ) -> list[SyncResult]:
        """Disable users whose disable the mass-disable guard held, now that a super admin
        confirmed it (SPEC §5.3).

        Args:
            holds: (user id, what the source reported: disabled, expired or missing).
            read_before: when the held run read them; a record synced since (a JIT sync
                read it again) is left as that newer read made it (IGNORED).
        """
        now = self._clock()
        applier = Applier(session, source_id, trigger, now)
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
            results.append(_result(plan, applier.apply(plan, user), view=False))
        session.flush()
        return results

    def apply_missing(
        self, session: Session, source_id: str, external_id: str, trigger: Trigger
    ) -> SyncResult:
        """Apply "this user is gone" (deleted upstream or out of scope) to a stored record."""
        now = self._clock()
        user = queries.find_by_external_id(session, source_id, external_id, for_update=True)
        plan = plan_missing(snapshot(user) if user else None, trigger, now)
        user = Applier(session, source_id, trigger, now).apply(plan, user)
        session.flush()
        return _result(plan, user)

    def _free_user_name(
        self,
        applier: Applier,
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
        applier.apply(plan_missing(snapshot(holder), trigger, now), holder)
        # Kept within the column's 255 characters: 200 of the name, the marker and a UUID.
        holder.user_name_key = f"{key[:200]}#replaced:{holder.id}"
        session.flush()

    def provisioning_delete(
        self,
        session: Session,
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
        user = stored_user(session, user_id)
        if user.source_id != source_id or user.source_status == SourceStatus.MISSING:
            # A user of another source does not exist as far as this source is concerned.
            raise NotFound(f"no user with id {user_id}")
        if expected_version is not None and user.version != expected_version:
            raise VersionMismatch
        now = self._clock()
        if hard:
            audit(session, user, now, "provisioning", "user.purged", {"rule": "hard_delete"})
            session.delete(user)
            return
        old = state_of(user)
        # The user is gone from its source, and so from the source's groups (a re-created
        # user is added to them again by the client, as Entra ID does).
        left = group_queries.leave_all_groups(session, user.id)
        change_state(
            session,
            user,
            old,
            rules.source_deleted(old, now),
            now,
            actor="provisioning",
            action="user.deleted",
            comment=f"removed from {left} group(s)" if left else None,
        )

    # -- cleanup (SPEC §5.5) -----------------------------------------------------------------

    def mark_never_used(self, session: Session, user_ids: Sequence[str]) -> list[SyncResult]:
        """Disable (`never_used`) and mark pending deletion users who never authenticated.

        A user who authenticated meanwhile, or is pending deletion already, is left alone
        (the result's outcome is IGNORED); the others are DISABLED, or UPDATED when they
        were disabled already.
        """
        now = self._clock()
        results = []
        for user_id in user_ids:
            user = queries.get_user(session, user_id, for_update=True)
            if user is None or user.last_auth_at is not None or user.pending_deletion_since:
                results.append(SyncResult(Outcome.IGNORED, user_id, None, "skipped"))
                continue
            old = state_of(user)
            change_state(
                session,
                user,
                old,
                rules.mark_never_used(old, now),
                now,
                actor="cleanup",
                action="user.marked_never_used",
            )
            # A user disabled already (by its source or an administrator) only gains
            # the pending-deletion date: updated, not newly disabled.
            outcome = Outcome.DISABLED if old.active else Outcome.UPDATED
            results.append(SyncResult(outcome, user.id, state_of(user), "cleanup"))
        session.flush()
        return results

    def purge(
        self, session: Session, user_ids: Sequence[str], *, before: datetime
    ) -> list[tuple[str, str]]:
        """Delete users pending deletion since `before` or earlier; the audit log keeps each one.

        Returns:
            (user_name, external_id) of every user deleted.
        """
        now = self._clock()
        deleted = []
        for user_id in user_ids:
            user = queries.get_user(session, user_id, for_update=True)
            since = user.pending_deletion_since if user else None
            if user is None or since is None or since > before:
                continue  # revived (or deleted) since the candidates were listed
            details = {"rule": "pending_deletion_expired", "pending_since": since.isoformat()}
            audit(session, user, now, "cleanup", "user.purged", details)
            deleted.append((user.user_name, user.external_id))
            session.delete(user)
        session.flush()
        return deleted

    def audit_action(
        self, session: Session, actor: Actor, user_id: str, action: str, details: Mapping[str, Any]
    ) -> None:
        """Record an administrator's action on a user that changed nothing by itself."""
        user = queries.get_user(session, user_id)
        if user is not None:
            audit(session, user, self._clock(), actor.name, action, details)


def stored_user(session: Session, user_id: str, *, lock: bool = True) -> User:
    """The record with this id, locked for the unit of work unless `lock` is False.

    Raises:
        NotFound: there is none.
    """
    user = queries.get_user(session, user_id, for_update=lock)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def change_state(
    session: Session,
    user: User,
    old: RecordState,
    new: RecordState,
    now: datetime,
    *,
    actor: str,
    action: str,
    comment: str | None = None,
) -> None:
    """Write a status change the engine decided, with its audit event (SPEC §4, §8)."""
    write_state(user, new, now)
    touch(user, now)
    details = {"from": describe(old), "to": describe(new), "comment": comment}
    audit(session, user, now, actor, action, details)


def _result(
    plan: SyncPlan, user: User | None, *, view: bool = True, user_id: str | None = None
) -> SyncResult:
    return SyncResult(
        plan.outcome,
        user.id if user else user_id,
        plan.decision.state,
        plan.decision.rule,
        plan.not_synchronized_reason,
        plan.decision.not_added_reason,
        view_of(user, phones=False) if user and view else None,
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
