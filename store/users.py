"""Queries and writes on users, audit events and sources. Every function takes the caller's
Session and never commits."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Row,
    Select,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from store.models import AuditEvent, AuthFailure, PhoneNumber, Source, SyncClaim, User


def ensure_sources(session: Session, sources: Iterable[tuple[str, str]], now: datetime) -> None:
    """Make sure a row exists for each configured (id, kind); a changed kind is updated."""
    existing = {source.id: source for source in session.scalars(select(Source))}
    for source_id, kind in sources:
        row = existing.get(source_id)
        if row is None:
            session.add(Source(id=source_id, kind=kind, created_at=now))
        elif row.kind != kind:
            row.kind = kind


def get_user(session: Session, user_id: str, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.id == user_id).options(selectinload(User.phones))
    if for_update:
        query = _locked(query)
    return session.scalars(query).one_or_none()


def find_by_external_id(
    session: Session, source_id: str, external_id: str, *, for_update: bool = False
) -> User | None:
    query = (
        select(User)
        .where(User.source_id == source_id, User.external_id == external_id)
        .options(selectinload(User.phones))
    )
    if for_update:
        query = _locked(query)
    return session.scalars(query).one_or_none()


def _locked(query: Select[User]) -> Select[User]:
    """The query with a row lock, refreshing a record the session loaded before the lock: a
    unit of work that read the user first must decide on what the locked row holds now."""
    return query.with_for_update().execution_options(populate_existing=True)


def find_by_user_name_key(session: Session, source_id: str, user_name_key: str) -> User | None:
    query = select(User).where(User.source_id == source_id, User.user_name_key == user_name_key)
    return session.scalars(query).one_or_none()


def find_by_scim_external_id(session: Session, source_id: str, value: str) -> list[User]:
    """The users a SCIM client gave this externalId (RFC 7643 §3.1: unique only to the client)."""
    query = select(User).where(User.source_id == source_id, User.scim_external_id == value)
    return list(session.scalars(query))


def find_by_dn_key(session: Session, source_id: str, dn_key: str) -> User | None:
    query = select(User).where(User.source_id == source_id, User.dn_key == dn_key)
    return session.scalars(query).first()


def find_by_upn_key(session: Session, source_id: str, upn_key: str) -> User | None:
    query = select(User).where(User.source_id == source_id, User.upn_key == upn_key)
    return session.scalars(query).first()


def _bind_select(key_column: str) -> Select[Any]:
    # Plain table columns and bound parameters, built once: the statement is compiled once and
    # its result needs no adaptation of ORM-annotated columns (the cost of this hot path).
    users = cast(Table, User.__table__)
    columns = (
        "id", "source_id", "external_id", "user_name", "dn", "status", "source_status",
        "disabled_by", "reason", "pending_deletion_since", "last_sync_at", "password_hash",
    )  # fmt: skip
    failures = cast(Table, AuthFailure.__table__)
    # The user's failed binds since `since` (the failure limit, SPEC §6) in the same round
    # trip: one index probe of auth_failures (key, at), instead of a second query per bind.
    recent = (
        select(func.count())
        .where(failures.c.key == users.c.id, failures.c.at > bindparam("since"))
        .scalar_subquery()
        .label("failures")
    )
    return (
        select(*(users.c[name] for name in columns), recent)
        .where(users.c.source_id == bindparam("source"), users.c[key_column] == bindparam("key"))
        .limit(1)
    )


_BIND_SELECTS = {
    "user_name": _bind_select("user_name_key"),
    "dn": _bind_select("dn_key"),
    "upn": _bind_select("upn_key"),
}


def bind_record(
    connection: Connection, source_id: str, by: str, key: str, failures_since: datetime
) -> Row[*tuple[Any, ...]] | None:
    """What authenticating a bind needs of the record whose `by` key ("user_name", "dn" or
    "upn") is `key` in this source, with its failed binds after `failures_since` (column
    `failures`): the hot path of every bind, one prepared select."""
    parameters = {"source": source_id, "key": key, "since": failures_since}
    return connection.execute(_BIND_SELECTS[by], parameters).first()


def claim_sync_window(
    session: Session, user_id: str, *, now: datetime, synced_before: datetime, until: datetime
) -> bool:
    """Claim the right to sync one user, atomically across threads and processes (SPEC §5.1).

    One conditional UPDATE: it succeeds only when the user was last synced before
    `synced_before` (the window has passed) and no other claim is live. The database's row lock
    makes concurrent claimers serialise on it, so exactly one wins.

    Returns:
        True when this caller holds the claim until `until`.
    """
    result = session.execute(
        update(User)
        .where(
            User.id == user_id,
            or_(User.last_sync_at.is_(None), User.last_sync_at < synced_before),
            or_(User.sync_claim_until.is_(None), User.sync_claim_until <= now),
        )
        .values(sync_claim_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def release_sync_claim(session: Session, user_id: str) -> None:
    """Give the claim back (a failed read: the next attempt must retry at once, SPEC §5.1)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(sync_claim_until=None)
        .execution_options(synchronize_session=False)
    )


def claim_name_window(
    session: Session,
    source_id: str,
    subject_key: str,
    *,
    now: datetime,
    read_before: datetime,
    until: datetime,
) -> bool:
    """Claim the upstream read of a bind name that has no record yet (see `SyncClaim`).

    The first claimer inserts the row; later ones can take it over only when the last read of
    that name is older than `read_before` and no claim is live. Under concurrency the insert
    and the conditional update serialise on the row, so exactly one caller wins.

    Returns:
        True when this caller holds the claim until `until`.
    """
    values = {"source_id": source_id, "subject_key": subject_key, "claim_until": until}
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SyncClaim)
    # RETURNING names the row only when this insert made it (a conflict returns nothing).
    inserted = session.execute(
        insert.values(**values).on_conflict_do_nothing().returning(SyncClaim.subject_key)
    )
    if inserted.first() is not None:
        return True
    result = session.execute(
        update(SyncClaim)
        .where(
            SyncClaim.source_id == source_id,
            SyncClaim.subject_key == subject_key,
            or_(SyncClaim.last_read_at.is_(None), SyncClaim.last_read_at < read_before),
            or_(SyncClaim.claim_until.is_(None), SyncClaim.claim_until <= now),
        )
        .values(claim_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def finish_name_read(session: Session, source_id: str, subject_key: str, at: datetime) -> None:
    """The read of a name succeeded (found or not): the window starts now."""
    session.execute(
        update(SyncClaim)
        .where(SyncClaim.source_id == source_id, SyncClaim.subject_key == subject_key)
        .values(last_read_at=at, claim_until=None)
        .execution_options(synchronize_session=False)
    )


def release_name_claim(session: Session, source_id: str, subject_key: str) -> None:
    """The read failed: give the claim back so the next attempt retries at once."""
    session.execute(
        update(SyncClaim)
        .where(SyncClaim.source_id == source_id, SyncClaim.subject_key == subject_key)
        .values(claim_until=None)
        .execution_options(synchronize_session=False)
    )


def name_claim_live(session: Session, source_id: str, subject_key: str, now: datetime) -> bool:
    claim = session.get(SyncClaim, (source_id, subject_key), populate_existing=True)
    return bool(claim and claim.claim_until and claim.claim_until > now)


def user_claim_live(session: Session, user_id: str, now: datetime) -> bool:
    until = session.scalar(select(User.sync_claim_until).where(User.id == user_id))
    return bool(until and until > now)


def record_authentications(session: Session, times: Mapping[str, datetime]) -> None:
    """Set last_auth_at for many users in one executemany, never moving it backwards."""
    if not times:
        return
    statement = (
        update(User)
        .where(
            User.id == bindparam("b_id"),
            or_(User.last_auth_at.is_(None), User.last_auth_at < bindparam("b_at")),
        )
        .values(last_auth_at=bindparam("b_at"))
    )
    session.connection().execute(
        statement, [{"b_id": user_id, "b_at": at} for user_id, at in times.items()]
    )


def add_audit_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    source_id: str | None = None,
    user_id: str | None = None,
    user_name: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=at,
            actor=actor,
            action=action,
            source_id=source_id,
            user_id=user_id,
            user_name=user_name,
            details=dict(details or {}),
        )
    )


def audit_events(session: Session, *, user_id: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    return list(session.scalars(query))


# -- bulk runs (SPEC §5.3): one query per page of users, not one per user ---------------------


def sync_rows(
    session: Session, source_id: str, external_ids: Iterable[str], *, lock: bool = True
) -> list[Row[Any]]:
    """What a bulk run compares a page against: one Core row per stored user, locked unless
    `lock` is False (a JIT read that only looks whether anything changed)."""
    query = select(
        User.id,
        User.external_id,
        User.source_digest,
        User.status,
        User.source_status,
        User.disabled_by,
        User.reason,
        User.pending_deletion_since,
        User.updated_at,
        User.last_sync_at,
    ).where(User.source_id == source_id, User.external_id.in_(list(external_ids)))
    return list(session.execute(query.with_for_update() if lock else query))


def users_by_external_ids(
    session: Session, source_id: str, external_ids: Iterable[str]
) -> dict[str, User]:
    query = (
        select(User)
        .where(User.source_id == source_id, User.external_id.in_(list(external_ids)))
        .options(selectinload(User.phones))
        .with_for_update()
    )
    return {user.external_id: user for user in session.scalars(query)}


def taken_name_keys(session: Session, source_id: str, keys: Iterable[str]) -> set[str]:
    query = select(User.user_name_key).where(
        User.source_id == source_id, User.user_name_key.in_(list(keys))
    )
    return set(session.scalars(query))


def insert_users(
    session: Session,
    users: list[dict[str, Any]],
    phones: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> None:
    """Insert new users, their phone numbers and audit events as three batched statements
    (a bulk run's first import adds whole pages of users)."""
    # Core statements on the tables: the ORM's bulk INSERT path costs twice as much per row.
    connection = session.connection()
    for model, rows in ((User, users), (PhoneNumber, phones), (AuditEvent, events)):
        if rows:
            connection.execute(insert(cast(Table, model.__table__)), rows)


def analyze_users(session: Session) -> None:
    """Refresh the planner's statistics of `users` (PostgreSQL; a no-op elsewhere).

    A table that a first import fills from empty keeps the statistics of an empty table until
    autovacuum comes by (or forever where it is off): PostgreSQL then reads a page of users by
    `source_id` alone and filters every stored user, and each page costs more than the last.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE users"))


def mark_synced(session: Session, user_ids: list[str], at: datetime, job_id: int | None) -> None:
    """Record a sync that found nothing new: the JIT window restarts (SPEC §5.1), nothing else
    changes (the version stays: the resource did not change). A bulk run (`job_id`) records
    that it saw the users; another sync leaves what a run recorded as it is."""
    if not user_ids:
        return
    values: dict[str, Any] = {"last_sync_at": at, "sync_claim_until": None}
    if job_id is not None:
        values["seen_in_job"] = job_id
    session.execute(
        update(User)
        .where(User.id.in_(user_ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


_USERS = cast(Table, User.__table__)
_MARK_ONE = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"))
    .values(last_sync_at=bindparam("at"), sync_claim_until=None)
)


def mark_each_synced(session: Session, marks: Sequence[tuple[str, datetime]]) -> None:
    """`mark_synced` of many users, each at its own time, in one executemany (the JIT's group
    commit): the window restarts and the claim is given back."""
    if marks:
        rows = [{"user_id": user_id, "at": at} for user_id, at in marks]
        session.connection().execute(_MARK_ONE, rows)


def audit_log(
    session: Session,
    *,
    user_id: str | None = None,
    source_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Audit events, newest first, filtered by any of user, source, action and time."""
    query = select(AuditEvent)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if source_id is not None:
        query = query.where(AuditEvent.source_id == source_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))
