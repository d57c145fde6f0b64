"""The one interpreter of a sync plan: engine operations become writes (STYLE: changes are values).

`gateway.engine.plan` decides and returns frozen operations (CreateUser, WriteSourceData,
SetState, SetPhones, MarkSynced, Audit); `Applier` is the only code that carries them out, in
the caller's session. A plan lands on one of two targets:

- a stored record (`Applier.apply`): an ORM `User`, written by the unit of work's flush;
- a page of new users (`Applier.add`): rows that `Applier.insert_added` writes in three
  batched INSERTs (users, phone numbers, audit events), because a first import adds whole
  pages and an ORM flush of every new object costs twice as much per row.
"""

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.engine.phones import PhoneEntry, PhoneKind
from gateway.engine.plan import (
    Audit,
    CreateUser,
    MarkSynced,
    SetPhones,
    SetState,
    SourceUser,
    SyncPlan,
    WriteSourceData,
)
from gateway.engine.status import RecordState
from gateway.engine.types import Trigger
from gateway.users.records import (
    phone_rows,
    source_columns,
    state_columns,
    write_phones,
    write_source_data,
    write_state,
)
from store import users as queries
from store.models import User


def audit_columns(
    at: datetime,
    actor: str,
    action: str,
    user: User | Mapping[str, Any],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """The columns of one audit event about a user (SPEC §8), from a record or a new row."""
    if isinstance(user, User):
        source_id, user_id, user_name = user.source_id, user.id, user.user_name
    else:
        source_id, user_id, user_name = user["source_id"], user["id"], user["user_name"]
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "source_id": source_id,
        "user_id": user_id,
        "user_name": user_name,
        "details": dict(details),
    }


def audit(
    session: Session,
    user: User,
    at: datetime,
    actor: str,
    action: str,
    details: Mapping[str, Any],
) -> None:
    """Record an audit event about a stored user in the unit of work (SPEC §8)."""
    queries.add_audit_event(session, **audit_columns(at, actor, action, user, details))


def touch(user: User, now: datetime) -> None:
    """The resource changed: a new ETag and meta.lastModified (RFC 7644 §3.14, RFC 7643 §3.1)."""
    user.version += 1
    user.updated_at = now


class Applier:
    """Carries out sync plans of one source in one session, at one instant."""

    def __init__(
        self,
        session: Session,
        source_id: str,
        trigger: Trigger,
        now: datetime,
        *,
        seen_in_job: int | None = None,
    ) -> None:
        """
        Args:
            seen_in_job: the bulk run applying the plans, recorded on the rows it adds.
        """
        self._session = session
        self._source_id = source_id
        self._actor = f"sync:{trigger.value}"
        self._now = now
        self._seen_in_job = seen_in_job
        self._users: list[dict[str, Any]] = []
        self._phones: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._random = b""

    def apply(self, plan: SyncPlan, user: User | None) -> User | None:
        """Carry out `plan` on a stored record (None when the plan creates one).

        Returns:
            The record as the plan left it (None when there was none and the plan made none).
        """
        target = _Record(self._session, user)
        self._run(plan, target)
        return target.user

    def add(self, plan: SyncPlan) -> str:
        """Carry out the plan of a new user as rows for `insert_added`; returns the new id."""
        target = _Rows(self._users, self._phones, self._events)
        self._run(plan, target)
        return str(target.row["id"])

    def insert_added(self) -> None:
        """Insert the rows of every `add` so far, in three statements."""
        queries.insert_users(self._session, self._users, self._phones, self._events)
        self._users, self._phones, self._events = [], [], []

    def _run(self, plan: SyncPlan, target: "_Record | _Rows") -> None:
        # The ETag moves only when the resource changed, not when a sync found nothing new.
        changed = False
        for op in plan.operations:
            match op:
                case CreateUser(data=data, state=state):
                    target.create(self._new_columns(data, state))
                case WriteSourceData(data=data):
                    target.write_source_data(data)
                    changed = True
                case SetState(new=state):
                    target.write_state(state, self._now)
                    changed = True
                case SetPhones(kind=kind, entries=entries):
                    target.write_phones(kind, entries)
                    changed = True
                case MarkSynced(at=at):
                    target.mark_synced(at)
                case Audit(action=action, details=details):
                    target.audit(self._now, self._actor, action, details)
        if changed:
            target.touch(self._now)

    def _new_columns(self, data: SourceUser, state: RecordState) -> dict[str, Any]:
        now = self._now
        return {
            # The id is given here, not by the flush, so the audit event needs no flush and a
            # page of new users is inserted in one batch.
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

    def _new_id(self) -> str:
        """A random (version 4) UUID, like `store.models.new_id`, drawn from one read of the
        system's randomness per hundred users: a read per user let the GIL go each time."""
        if not self._random:
            self._random = os.urandom(16 * 100)
        raw, self._random = self._random[:16], self._random[16:]
        return str(uuid.UUID(bytes=raw, version=4))


class _Record:
    """A plan's target that is an ORM record, added to the session when the plan creates it."""

    def __init__(self, session: Session, user: User | None) -> None:
        self._session = session
        self.user = user

    def _stored(self) -> User:
        assert self.user is not None, "the plan changes a record it did not create"
        return self.user

    def create(self, columns: dict[str, Any]) -> None:
        self.user = User(**columns)
        self._session.add(self.user)

    def write_source_data(self, data: SourceUser) -> None:
        write_source_data(self._stored(), data)

    def write_state(self, state: RecordState, now: datetime) -> None:
        write_state(self._stored(), state, now)

    def write_phones(self, kind: PhoneKind, entries: Sequence[PhoneEntry]) -> None:
        write_phones(self._stored(), kind, entries)

    def mark_synced(self, at: datetime) -> None:
        user = self._stored()
        user.last_sync_at = at
        user.sync_claim_until = None

    def audit(self, at: datetime, actor: str, action: str, details: Mapping[str, Any]) -> None:
        audit(self._session, self._stored(), at, actor, action, details)

    def touch(self, now: datetime) -> None:
        if self.user is not None:
            touch(self.user, now)


class _Rows:
    """A plan's target that is a new user's rows, for one batched insert of a page."""

    def __init__(
        self,
        users: list[dict[str, Any]],
        phones: list[dict[str, Any]],
        events: list[dict[str, Any]],
    ) -> None:
        self._users = users
        self._phones = phones
        self._events = events
        self.row: dict[str, Any] = {}

    def create(self, columns: dict[str, Any]) -> None:
        self.row = columns
        self._users.append(columns)

    def write_source_data(self, data: SourceUser) -> None:
        raise AssertionError("a new user's plan writes its source data when it creates it")

    def write_state(self, state: RecordState, now: datetime) -> None:
        raise AssertionError("a new user's plan sets its state when it creates it")

    def write_phones(self, kind: PhoneKind, entries: Sequence[PhoneEntry]) -> None:
        self._phones += phone_rows(self.row["id"], kind, entries)

    def mark_synced(self, at: datetime) -> None:
        self.row["last_sync_at"] = at

    def audit(self, at: datetime, actor: str, action: str, details: Mapping[str, Any]) -> None:
        self._events.append(audit_columns(at, actor, action, self.row, details))

    def touch(self, now: datetime) -> None:
        """A new row is version 1 whatever its plan wrote: it was never served before."""
