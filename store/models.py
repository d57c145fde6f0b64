"""The user store's tables (SQLAlchemy 2.0 typed ORM).

One row per (source, user), keyed by the source's immutable id (`entryUUID`, `objectGUID`, the
SCIM resource id). Columns fall in the two classes of SPEC §3: *source-owned* ones are rewritten
by every sync; *gateway-owned* ones (devices, enrolled methods, manual phone numbers, notes,
timestamps) are never touched by a sync. The column comments say which is which.

The store knows nothing of the status rules: status columns hold plain strings whose meaning
lives in `gateway.engine`.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # SQLAlchemy reads this class attribute once, when mapping; it is never mutated.
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}  # noqa: RUF012


def new_id() -> str:
    return str(uuid.uuid4())


class Source(Base):
    """A configured identity source; the row exists so users, groups and jobs can refer to it."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        # userName is unique per source, case-insensitively (RFC 7643 §4.1.1 caseExact=false).
        UniqueConstraint("source_id", "user_name_key"),
        Index("ix_users_source_dn_key", "source_id", "dn_key"),
        Index("ix_users_source_upn_key", "source_id", "upn_key"),
        Index("ix_users_last_auth", "source_id", "last_auth_at"),
        Index("ix_users_pending", "pending_deletion_since"),
        # Entra ID matches users by externalId before it creates them.
        Index("ix_users_source_scim_external_id", "source_id", "scim_external_id"),
    )

    #: The gateway's own id (the SCIM resource id in the admin view).
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    #: The source's immutable id: entryUUID, objectGUID, or the SCIM resource id.
    external_id: Mapped[str] = mapped_column(String(255))

    # -- source-owned: rewritten by every sync -------------------------------------------------
    user_name: Mapped[str] = mapped_column(String(255))
    #: casefolded user_name; the lookup and uniqueness key.
    user_name_key: Mapped[str] = mapped_column(String(255))
    dn: Mapped[str | None] = mapped_column(String(1024))
    dn_key: Mapped[str | None] = mapped_column(String(1024))
    #: casefolded userPrincipalName (AD), so `user@domain` binds find the record.
    upn_key: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    #: [{"value": ..., "type": ..., "primary": bool}]
    emails: Mapped[list[Any]] = mapped_column(default=list)
    #: Group names or DNs as the source reports them (memberOf).
    groups: Mapped[list[Any]] = mapped_column(default=list)
    #: The configured extra "policy" attributes: {name: [values]}.
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: A SCIM client's own externalId (RFC 7643 §3.1), distinct from the key above.
    scim_external_id: Mapped[str | None] = mapped_column(String(255))
    #: What a SCIM client sent of the resource (RFC 7643 §4.1 attributes other than id, meta,
    #: groups and password), returned to that client as it sent it.
    scim_document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: argon2 hash of a password a SCIM client or an administrator set; never from a directory.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    #: The last status the source reported: enabled | disabled | expired | missing.
    source_status: Mapped[str] = mapped_column(String(16))
    #: Digest of the source-owned data, so a sync can tell "unchanged" without a field compare.
    source_digest: Mapped[str] = mapped_column(String(64))

    # -- status (SPEC §4.1), decided by gateway.engine ----------------------------------------
    status: Mapped[str] = mapped_column(String(16))
    disabled_by: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    pending_deletion_since: Mapped[datetime | None]
    status_changed_at: Mapped[datetime]

    # -- gateway-owned: never touched by a sync ------------------------------------------------
    created_at: Mapped[datetime]
    #: When the resource last changed (with `version`): SCIM meta.lastModified.
    updated_at: Mapped[datetime]
    last_sync_at: Mapped[datetime | None]
    last_auth_at: Mapped[datetime | None]
    admin_notes: Mapped[str | None] = mapped_column(Text)
    #: JIT window claim (SPEC §5.1): while in the future, one reader holds this user's sync.
    sync_claim_until: Mapped[datetime | None]
    #: Bumped when the resource changes (source-owned data, status, gateway-owned data an
    #: administrator edits), not when a sync finds nothing new: the SCIM ETag (RFC 7644 §3.14).
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: The bulk run that last read this user upstream: after a complete run, a record of the
    #: source that run did not see is `missing` (SPEC §5.3) without holding every id in memory.
    seen_in_job: Mapped[int | None] = mapped_column(Integer)

    phones: Mapped[list["PhoneNumber"]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="(PhoneNumber.kind, PhoneNumber.position)",
    )
    devices: Mapped[list["Device"]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    methods: Mapped[list["EnrolledMethod"]] = relationship(cascade="all, delete-orphan")


class SyncClaim(Base):
    """The JIT window of a bind name that has no record yet (SPEC §5.1).

    A record's own window lives on `users`; this table covers the first binds of a new user
    (one upstream read for any number of them) and repeated binds of names the directory does
    not know (one negative lookup per window, not one per bind).
    """

    __tablename__ = "sync_claims"

    source_id: Mapped[str] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    #: "<kind>:<casefolded name>", e.g. "login:alice" or "dn:uid=alice,ou=people,dc=x".
    subject_key: Mapped[str] = mapped_column(String(1100), primary_key=True)
    last_read_at: Mapped[datetime | None]
    claim_until: Mapped[datetime | None]


class AuthFailure(Base):
    """One refused bind that counts against a name's failure limit (SPEC §6).

    One row per failure, written by whichever gateway process saw it, so the limit holds
    across every process sharing the store: N gateways behind a load balancer must not let N
    times as many wrong passwords reach the directory. Rows older than the window are swept
    by the next failure.
    """

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_key", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: What is limited: a user id, "<source>/<kind>:<name>", or a service account and the
    #: client address it bound from; casefolded.
    key: Mapped[str] = mapped_column(String(1200))
    at: Mapped[datetime] = mapped_column(index=True)


class UserChange(Base):
    """A change of what a bind reads of a user (`store.users.bind_record`), or a failed bind
    counted against the user: one row per changed user, written by database triggers
    (`store.changes`), so every writer is logged, other processes and raw SQL included.

    In-process caches of bind records (`gateway.auth.bindcache`) drop the users named here.
    The triggers keep the newest rows only (`store.changes.KEEP`).
    """

    __tablename__ = "user_changes"
    __table_args__ = (Index("ix_user_changes_txid", "txid"), {"sqlite_autoincrement": True})

    #: Commit order on SQLite (writers are serialised and AUTOINCREMENT leaves no gap).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    #: The changed user's id (a user deleted since included).
    user_id: Mapped[str] = mapped_column(String(36))
    #: The writing transaction (PostgreSQL's txid_current()); NULL on SQLite.
    txid: Mapped[int | None] = mapped_column(BigInteger)


class PhoneNumber(Base):
    """One slot of a user's SMS or voice list (SPEC §3); position 0 is the default number."""

    __tablename__ = "phone_numbers"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: "" marks a number an administrator deleted: hidden, and it keeps sync from restoring it.
    number: Mapped[str] = mapped_column(String(64))
    #: Entered, edited or deleted by an administrator: never overwritten by sync.
    manual: Mapped[bool] = mapped_column(Boolean)

    user: Mapped[User] = relationship(back_populates="phones")


class Device(Base):
    """A registered authenticator (gateway-owned)."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(255))
    registered_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    user: Mapped[User] = relationship(back_populates="devices")


class EnrolledMethod(Base):
    """An authentication method a user enrolled in (gateway-owned)."""

    __tablename__ = "enrolled_methods"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(32), primary_key=True)
    enrolled_at: Mapped[datetime]


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("source_id", "display_name_key"),
        UniqueConstraint("source_id", "external_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str] = mapped_column(String(255))
    scim_external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    #: The SCIM client's `display` for this member (RFC 7643 §4.2), returned as it sent it.
    display: Mapped[str | None] = mapped_column(String(255))


class SyncJob(Base):
    """A bulk sync, refresh or cleanup run (SPEC §5.3-§5.5), with its lease and counts."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        Index("ix_sync_jobs_source_state", "source_id", "state"),
        Index("ix_sync_jobs_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str | None] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    #: running | stopping | stopped | succeeded | failed | interrupted | held | discarded
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    #: The process that runs the job; it renews the lease while it works. A lease that runs out
    #: means the process died: the job is marked interrupted and the source is free again.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    #: The "resync all" this job belongs to (SPEC §5.6), if any.
    batch_id: Mapped[str | None] = mapped_column(String(36))
    #: Entries read from the source (bulk) or users looked at (refresh, cleanup).
    read: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[int] = mapped_column(Integer, default=0)
    not_synchronized: Mapped[int] = mapped_column(Integer, default=0)
    #: Records removed (cleanup, SPEC §5.5).
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    #: Users whose read failed (refresh): nothing changed for them.
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: Users the mass-disable guard kept from being disabled (SPEC §5.3): `job_holds`.
    held: Mapped[int] = mapped_column(Integer, default=0)
    #: Why the guard held the run, while it waits for a super admin (state `held`).
    held_reason: Mapped[str | None] = mapped_column(Text)


class JobHold(Base):
    """A user a held run would have disabled, and why (SPEC §5.3, the mass-disable guard).

    The whole list, unlike the details lists: confirming the run disables exactly these.
    """

    __tablename__ = "job_holds"
    __table_args__ = (Index("ix_job_holds_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"))
    #: The record (not a foreign key: a record deleted meanwhile is skipped at confirmation).
    user_id: Mapped[str] = mapped_column(String(36))
    external_id: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255))
    #: What the source reported: disabled, expired or missing.
    source_status: Mapped[str] = mapped_column(String(16))


class SyncJobDetail(Base):
    """One user in a job's per-category details list (at most 400 per category, SPEC §5.3)."""

    __tablename__ = "sync_job_details"
    __table_args__ = (Index("ix_sync_job_details_job_category", "job_id", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(255))


class AuditEvent(Base):
    """Every status change and admin action (SPEC §8). Outlives the user it names."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(String(63))
    #: No foreign key: the event must survive the user's deletion.
    user_id: Mapped[str | None] = mapped_column(String(36))
    user_name: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lease(Base):
    """A named lease for work that must happen once across every gateway process (SPEC §1)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]
