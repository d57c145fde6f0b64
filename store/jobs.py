"""Queries for jobs (SPEC §5.3-§5.6) and the leases that make work happen once (SPEC §1).

A lease is a row of `leases` that one process holds until `expires_at`; taking it is one
conditional UPDATE (or, the first time, an INSERT that the primary key lets only one process
win), so it holds across every gateway process sharing the store. A process that dies simply
stops renewing, and the lease is free again when it runs out.

Like every store module, these functions take the caller's session and never commit.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.job_columns import LIVE_STATES
from store.models import JobHold, Lease, SyncJob, SyncJobDetail, User

# -- leases ------------------------------------------------------------------------------------


def take_lease(
    session: Session,
    name: str,
    owner: str,
    now: datetime,
    until: datetime,
    *,
    reentrant: bool = True,
) -> bool:
    """Take the lease `name` for `owner` until `until`, if nobody else holds it at `now`.

    Args:
        reentrant: whether `owner` may take again a lease it holds (False for a period
            lease, which must not be taken twice in one period even by its holder).

    Returns:
        True when `owner` holds the lease now (newly taken, or renewed).
    """
    free = Lease.expires_at <= now
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, free | (Lease.owner == owner) if reentrant else free)
        .values(owner=owner, expires_at=until)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    # No row yet, or a live one held by another process. Only one INSERT can win the primary
    # key; the savepoint keeps a lost race from spoiling the caller's transaction.
    try:
        with session.begin_nested():
            session.add(Lease(name=name, owner=owner, expires_at=until))
    except IntegrityError:
        return False
    return True


def renew_lease(session: Session, name: str, owner: str, until: datetime) -> bool:
    """Extend a lease `owner` holds. Returns False when it has lost it (it ran out and another
    process took it)."""
    renewed = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.owner == owner)
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


def release_lease(session: Session, name: str, owner: str) -> None:
    session.execute(
        delete(Lease)
        .where(Lease.name == name, Lease.owner == owner)
        .execution_options(synchronize_session=False)
    )


def lease_holder(session: Session, name: str, now: datetime) -> str | None:
    return session.scalar(select(Lease.owner).where(Lease.name == name, Lease.expires_at > now))


# -- jobs --------------------------------------------------------------------------------------


def get_job(session: Session, job_id: int) -> SyncJob | None:
    return session.get(SyncJob, job_id)


def live_job(session: Session, source_id: str | None, kind: str | None = None) -> SyncJob | None:
    """The running or stopping job of a source (or the source-less job of `kind`)."""
    query = select(SyncJob).where(SyncJob.state.in_(LIVE_STATES))
    query = query.where(
        SyncJob.source_id == source_id if source_id is not None else SyncJob.source_id.is_(None)
    )
    if kind is not None:
        query = query.where(SyncJob.kind == kind)
    return session.scalars(query.order_by(SyncJob.id.desc()).limit(1)).first()


def history(
    session: Session,
    *,
    source_id: str | None = None,
    kind: str | None = None,
    batch_id: str | None = None,
    limit: int = 50,
) -> Sequence[SyncJob]:
    query = select(SyncJob)
    if source_id is not None:
        query = query.where(SyncJob.source_id == source_id)
    if kind is not None:
        query = query.where(SyncJob.kind == kind)
    if batch_id is not None:
        query = query.where(SyncJob.batch_id == batch_id)
    return session.scalars(query.order_by(SyncJob.id.desc()).limit(limit)).all()


def last_successes(session: Session, kind: str) -> list[tuple[str, datetime]]:
    """(source, end) of each source's latest job of `kind` that succeeded."""
    rows = session.execute(
        select(SyncJob.source_id, func.max(SyncJob.ended_at))
        .where(SyncJob.kind == kind, SyncJob.state == "succeeded", SyncJob.source_id.is_not(None))
        .group_by(SyncJob.source_id)
    ).all()
    return [(source, ended) for source, ended in rows if source is not None and ended is not None]


def any_lease_expired(session: Session, now: datetime) -> bool:
    """Whether a live job's process stopped renewing its lease (a read: `mark_interrupted`
    takes the write lock, which on SQLite waits for every running job's writes)."""
    found = session.scalar(
        select(SyncJob.id)
        .where(SyncJob.state.in_(LIVE_STATES), SyncJob.lease_expires_at < now)
        .limit(1)
    )
    return found is not None


def mark_interrupted(session: Session, now: datetime, reason: str) -> list[SyncJob]:
    """Jobs whose process stopped renewing their lease: marked `interrupted` (SPEC §5.3)."""
    jobs = session.scalars(
        select(SyncJob)
        .where(SyncJob.state.in_(LIVE_STATES), SyncJob.lease_expires_at < now)
        .with_for_update()
    ).all()
    for job in jobs:
        job.state = "interrupted"
        job.ended_at = job.lease_expires_at
        job.error = reason
        job.lease_owner = None
    return list(jobs)


def add_counts(session: Session, job_id: int, counts: Mapping[str, int]) -> None:
    """Add to a job's counters in the caller's transaction, so they commit with the writes
    they count."""
    values: dict[str, Any] = {
        name: getattr(SyncJob, name) + amount for name, amount in counts.items() if amount
    }
    if values:
        session.execute(
            update(SyncJob)
            .where(SyncJob.id == job_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def renew_job(session: Session, job_id: int, owner: str, until: datetime) -> tuple[bool, str]:
    """Extend a job's lease and read whether a stop was asked.

    Returns:
        (whether `owner` still runs the job, its state).
    """
    session.execute(
        update(SyncJob)
        .where(SyncJob.id == job_id, SyncJob.lease_owner == owner)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(
        select(SyncJob.lease_owner, SyncJob.state, SyncJob.stop_requested).where(
            SyncJob.id == job_id
        )
    ).one()
    state = "stopping" if row.stop_requested and row.state == "running" else row.state
    return row.lease_owner == owner, state


def add_details(
    session: Session, job_id: int, rows: Iterable[tuple[str, str, str | None, str]]
) -> None:
    """Append (category, user_name, external_id, reason) rows to a job's details lists."""
    session.add_all(
        SyncJobDetail(
            job_id=job_id, category=category, user_name=name, external_id=ext, reason=reason
        )
        for category, name, ext, reason in rows
    )


def clear_details(session: Session, source_id: str | None, kind: str, keep_job_id: int) -> None:
    """A new run replaces the previous runs' details lists (SPEC §5.3); their counts stay."""
    older = select(SyncJob.id).where(
        SyncJob.kind == kind,
        SyncJob.id != keep_job_id,
        SyncJob.source_id == source_id if source_id is not None else SyncJob.source_id.is_(None),
    )
    session.execute(
        delete(SyncJobDetail)
        .where(SyncJobDetail.job_id.in_(older))
        .execution_options(synchronize_session=False)
    )


def details(
    session: Session, job_id: int, *, category: str | None = None, limit: int = 400
) -> Sequence[SyncJobDetail]:
    query = select(SyncJobDetail).where(SyncJobDetail.job_id == job_id)
    if category is not None:
        query = query.where(SyncJobDetail.category == category)
    return session.scalars(query.order_by(SyncJobDetail.id).limit(limit)).all()


# -- the users jobs work on --------------------------------------------------------------------


def count_users(session: Session, source_id: str) -> int:
    return session.scalar(select(func.count()).where(User.source_id == source_id)) or 0


def unseen_users(
    session: Session, source_id: str, job_id: int, started_at: datetime, after: str, limit: int
) -> Sequence[tuple[str, str, str, str]]:
    """(id, external_id, user_name, status) of records a complete bulk run did not see, in
    id order.

    Records already `missing` are left out (nothing would change), and so are records synced
    since the run started (a JIT sync read them more recently than the run's page did).
    """
    rows = session.execute(
        select(User.id, User.external_id, User.user_name, User.status)
        .where(
            User.source_id == source_id,
            User.source_status != "missing",
            (User.seen_in_job.is_(None)) | (User.seen_in_job != job_id),
            (User.last_sync_at.is_(None)) | (User.last_sync_at < started_at),
            User.id > after,
        )
        .order_by(User.id)
        .limit(limit)
    ).all()
    return [(row.id, row.external_id, row.user_name, row.status) for row in rows]


def count_active(session: Session, source_id: str) -> int:
    """A source's active users: what the mass-disable guard measures a run against."""
    query = select(func.count()).where(User.source_id == source_id, User.status == "active")
    return session.scalar(query) or 0


def mark_seen(session: Session, user_ids: Sequence[str], job_id: int) -> None:
    """A bulk run saw these records but wrote nothing to them (a disable it holds back)."""
    if user_ids:
        session.execute(
            update(User)
            .where(User.id.in_(user_ids))
            .values(seen_in_job=job_id)
            .execution_options(synchronize_session=False)
        )


# -- the users a held run would disable (SPEC §5.3, the mass-disable guard) -------------------


def add_holds(session: Session, job_id: int, rows: Iterable[tuple[str, str, str, str]]) -> None:
    """Append (user_id, external_id, user_name, source_status) rows to a job's hold list."""
    values = [
        {
            "job_id": job_id,
            "user_id": user_id,
            "external_id": external_id,
            "user_name": user_name,
            "source_status": status,
        }
        for user_id, external_id, user_name, status in rows
    ]
    if values:
        session.execute(insert(JobHold), values)


def holds(session: Session, job_id: int, after: int, limit: int) -> Sequence[JobHold]:
    """A page of a job's hold list, in the order it was written, from hold id `after`."""
    return session.scalars(
        select(JobHold)
        .where(JobHold.job_id == job_id, JobHold.id > after)
        .order_by(JobHold.id)
        .limit(limit)
    ).all()


def drop_holds(session: Session, job_id: int) -> None:
    session.execute(
        delete(JobHold).where(JobHold.job_id == job_id).execution_options(synchronize_session=False)
    )


def held_jobs(session: Session, source_id: str, before_job: int) -> Sequence[SyncJob]:
    """A source's held runs older than `before_job` (a newer run supersedes them)."""
    return session.scalars(
        select(SyncJob)
        .where(SyncJob.source_id == source_id, SyncJob.state == "held", SyncJob.id < before_job)
        .with_for_update()
    ).all()


def idle_users(
    session: Session,
    source_id: str,
    *,
    idle_before: datetime,
    synced_before: datetime,
    limit: int,
) -> Sequence[tuple[str, str, str, str]]:
    """(id, external_id, user_name, status) of a source's users idle since before `idle_before`
    (SPEC §5.4): last authenticated before then, or never and created before then.

    The least recently synced come first, and among those the longest idle: a daily batch
    smaller than the idle population then works through all of it over the days instead of
    re-reading the same longest-idle users every day. Users synced since `synced_before` are
    fresh already and left out.
    """
    idle_since = func.coalesce(User.last_auth_at, User.created_at)
    synced = func.coalesce(User.last_sync_at, User.created_at)
    rows = session.execute(
        select(User.id, User.external_id, User.user_name, User.status)
        .where(
            User.source_id == source_id,
            idle_since < idle_before,
            (User.last_sync_at.is_(None)) | (User.last_sync_at < synced_before),
        )
        .order_by(synced, idle_since, User.id)
        .limit(limit)
    ).all()
    return [(row.id, row.external_id, row.user_name, row.status) for row in rows]


def never_used(session: Session, created_before: datetime, after: str, limit: int) -> list[str]:
    """Ids of users created at `created_before` or earlier who never authenticated, not yet
    pending deletion (SPEC §5.5), in id order from `after`."""
    return list(
        session.scalars(
            select(User.id)
            .where(
                # "created at least N days ago" (SPEC §5.5): the boundary is included.
                User.created_at <= created_before,
                User.last_auth_at.is_(None),
                User.pending_deletion_since.is_(None),
                User.id > after,
            )
            .order_by(User.id)
            .limit(limit)
        )
    )


def pending_since(session: Session, before: datetime, after: str, limit: int) -> list[str]:
    """Ids of users pending deletion since `before` or earlier (SPEC §5.5), in id order."""
    return list(
        session.scalars(
            select(User.id)
            .where(User.pending_deletion_since <= before, User.id > after)
            .order_by(User.id)
            .limit(limit)
        )
    )
