"""The user service: the one entry point that changes user records.

Syncs of every kind (JIT, single-user, bulk, refresh) and SCIM writes hand it "what the source
reports"; administrators' actions come through it too. It plans with the pure engine
(`gateway.engine.plan`, `gateway.engine.status`), applies the plan in one transaction per unit
of work, and writes an audit event for every status change and every admin action.

Blocking: every method does database I/O. Callers on an event loop run them in a thread pool.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
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
)
from gateway.engine.roles import Permission, allowed
from gateway.engine.status import RecordState
from gateway.engine.types import Reason, Role, SourceStatus, Trigger
from gateway.errors import InvalidInput, NameTaken, NotFound, PermissionDenied, VersionMismatch
from gateway.names import name_key
from gateway.records import (
    UserView,
    phones_of,
    snapshot,
    state_of,
    view_of,
    write_phones,
    write_source_data,
    write_state,
)
from store import groups as group_queries
from store import users as queries
from store.db import Store
from store.models import Device, User

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
        return self._result(plan, user)

    def apply_missing(self, source_id: str, external_id: str, trigger: Trigger) -> SyncResult:
        """Apply "this user is gone" (deleted upstream or out of scope) to a stored record."""
        with self._store.writing() as session:
            now = self._clock()
            user = queries.find_by_external_id(session, source_id, external_id, for_update=True)
            plan = plan_missing(snapshot(user) if user else None, trigger, now)
            user = self._apply(session, source_id, user, plan, trigger, now)
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
                    session.flush()  # a new user needs its id for the event
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
        session.flush()
        return user

    @staticmethod
    def _result(plan: SyncPlan, user: User | None) -> SyncResult:
        return SyncResult(
            plan.outcome,
            user.id if user else None,
            plan.decision.state,
            plan.decision.rule,
            plan.not_synchronized_reason,
            plan.decision.not_added_reason,
            view_of(user, phones=False) if user else None,
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

    def devices(self, actor: Actor, user_id: str) -> list[tuple[str, str, str]]:
        actor.require(Permission.VIEW_USERS)
        with self._store.reading() as session:
            user = self._user(session, user_id)
            return [(d.id, d.kind, d.label) for d in user.devices]

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


def _touch(user: User, now: datetime) -> None:
    """The resource changed: a new ETag and meta.lastModified (RFC 7644 §3.14, RFC 7643 §3.1)."""
    user.version += 1
    user.updated_at = now
