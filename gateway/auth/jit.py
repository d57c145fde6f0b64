"""Just-in-time sync (SPEC §5.1): an authentication attempt re-reads that one user upstream.

- At most one read per user per window (`sync.jit_interval_seconds`, from the last successful
  sync of any kind). The window is claimed with one atomic conditional UPDATE in the store, so
  it holds across threads and across gateway processes sharing PostgreSQL; concurrent attempts
  that lose the claim wait for the winner's result instead of reading again.
- A read that fails, or passes `sync.jit_deadline_seconds`, changes nothing: the claim is
  given back so the next attempt retries at once, and the caller decides from the cached record.
- A name with no record yet has its window in `sync_claims`: the first binds of a new user
  cause one read, and a name the directory does not know is looked up once per window.
- Within one process, concurrent attempts of one user (or one unknown name) share the read in
  flight (`gateway.auth.binds.Authenticator`, on the event loop): only the first calls
  `JitSync.sync`, so the store sees one claim per process, not per bind.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Row
from twisted.internet.defer import Deferred

from gateway.auth.jitwrites import JitWrites
from gateway.auth.routing import Subject
from gateway.config import AdSource, LdapSource, SyncConfig
from gateway.directory import BindResult, DirectoryEntry, NameKind, to_source_user
from gateway.engine.plan import Outcome
from gateway.engine.status import RecordState
from gateway.engine.types import DisabledBy, Trigger
from gateway.errors import UpstreamError
from gateway.users.records import UserView, state_of
from gateway.users.service import SyncResult, UserService
from store import users as queries
from store.db import Store
from store.models import User

BindRow = Row[*tuple[Any, ...]]

log = logging.getLogger(__name__)

# How often a losing attempt looks whether the winner's read has finished.
_POLL_SECONDS = 0.02


class UserDirectory(Protocol):
    """What JIT sync and authentication need from a directory connector."""

    def find_user(self, kind: NameKind, value: str) -> DirectoryEntry | None: ...

    def read_user(self, external_id: str) -> DirectoryEntry | None: ...

    def verify(self, dn: str, password: str) -> "Deferred[BindResult]":
        """The password check, a bind on the event loop (`gateway.directory.reactor_binds`)."""
        ...


@dataclass(frozen=True)
class CachedUser:
    """What the store knows of a user, as authentication needs it."""

    id: str
    source_id: str
    external_id: str
    user_name: str
    dn: str | None
    state: RecordState
    last_sync_at: datetime | None
    password_hash: str | None
    #: Failed binds within the failure limit's window, as `lookup` was asked to count them.
    recent_failures: int = 0

    @classmethod
    def synced(cls, view: UserView) -> "CachedUser":
        """A directory user as the sync just wrote it: its view, without reading the row
        back (a directory keeps the passwords, so the record holds none)."""
        return cls(
            view.id,
            view.source_id,
            view.external_id,
            view.user_name,
            view.dn,
            view.state,
            view.last_sync_at,
            None,
        )

    @classmethod
    def of(cls, user: "User | BindRow") -> "CachedUser":
        return cls(
            user.id,
            user.source_id,
            user.external_id,
            user.user_name,
            user.dn,
            state_of(user),
            user.last_sync_at,
            user.password_hash,
            int(getattr(user, "failures", 0) or 0),
        )


class Freshness(StrEnum):
    #: This attempt read the user upstream and applied the result.
    READ = "read"
    #: Another attempt read the user while this one waited; its result is in the store.
    SHARED = "shared"
    #: Synced within the window: no read.
    THROTTLED = "throttled"
    #: The read failed or passed the deadline: the cached record decides.
    FAILED = "failed"


@dataclass(frozen=True)
class JitResult:
    freshness: Freshness
    #: The record after the sync (or as cached); None when the store has no record.
    user: CachedUser | None
    #: The directory's entry when this attempt read it (its DN is the one to bind with).
    entry: DirectoryEntry | None = None
    #: The sync's outcome when this attempt read the user.
    sync: SyncResult | None = None


#: `lookup` without a failure count: failures after the end of time are none.
NO_FAILURES = datetime.max.replace(tzinfo=UTC)


#: (source id, "user_name" | "dn" | "upn", key): what `store.users.bind_record` looks up.
BindKey = tuple[str, str, str]


def bind_key(subject: Subject) -> BindKey:
    """The stored record's key a bind name designates in its source."""
    key = subject.key.partition(":")[2]
    if subject.kind is NameKind.DN:
        return (subject.source.id, "dn", key)
    if subject.kind is NameKind.UPN:
        return (subject.source.id, "upn", key)
    if subject.kind is NameKind.DOWNLEVEL:
        key = key.partition("\\")[2]
    return (subject.source.id, "user_name", key)


def read_bind_record(
    store: Store, key: BindKey, *, failures_since: datetime = NO_FAILURES
) -> CachedUser | None:
    """The stored record of `key`, if any, with its failed binds after `failures_since`
    (`CachedUser.recent_failures`)."""
    source_id, by, value = key
    with store.core_connection() as connection:
        row = queries.bind_record(connection, source_id, by, value, failures_since)
    return CachedUser.of(row) if row else None


def lookup(
    store: Store, subject: Subject, *, failures_since: datetime = NO_FAILURES
) -> CachedUser | None:
    """The stored record a bind name designates in its source, if any, with its failed binds
    after `failures_since` (`CachedUser.recent_failures`)."""
    return read_bind_record(store, bind_key(subject), failures_since=failures_since)


def _reload(store: Store, user_id: str) -> CachedUser | None:
    with store.reading() as session:
        user = queries.get_user(session, user_id)
        return CachedUser.of(user) if user else None


class JitSync:
    """Runs the JIT sync of one bind attempt. Blocking; call from a worker thread."""

    def __init__(
        self,
        store: Store,
        users: UserService,
        settings: SyncConfig,
        executor: Executor,
        *,
        clock: Callable[[], datetime],
        on_read: Callable[[str, bool, float], None] | None = None,
        writes: JitWrites,
        remember: Callable[[CachedUser], None] | None = None,
    ) -> None:
        """
        Args:
            writes: the group writer of the claims and of the marks of reads that found
                nothing new.
            remember: told the record each committed sync wrote (the bind records in
                memory, `gateway.auth.bindcache.BindRecords.remember`), so the next bind of
                that user needs no store read. Not told of a mark (`writes`): the record it
                was built from was read without a lock, and may be older than the mark.
        """
        self._store = store
        self._writes = writes
        self._remember = remember or (lambda _user: None)
        self._users = users
        self._settings = settings
        self._executor = executor
        self._clock = clock
        # Metrics hook: (source id, succeeded, seconds) for every upstream read.
        self._on_read = on_read or (lambda _source, _ok, _seconds: None)

    @property
    def _interval(self) -> timedelta:
        return timedelta(seconds=self._settings.jit_interval_seconds)

    @property
    def _deadline(self) -> float:
        return float(self._settings.jit_deadline_seconds)

    def _claim_until(self, now: datetime) -> datetime:
        # Longer than the deadline, so a claim only outlives its reader when the reader died.
        return now + timedelta(seconds=2 * self._deadline + 1)

    def sync(
        self, subject: Subject, directory: UserDirectory, cached: CachedUser | None
    ) -> JitResult:
        """Sync the user a bind name designates, unless the window says not to. Blocking."""
        if cached is not None:
            if not self._due(cached, self._clock()):
                return JitResult(Freshness.THROTTLED, cached)
            return self._sync_known(subject, directory, cached)
        return self._sync_new(subject, directory)

    def due(self, cached: CachedUser) -> bool:
        """Whether a bind of this user now should read it upstream (the window has passed)."""
        return self._due(cached, self._clock())

    def _due(self, cached: CachedUser, now: datetime) -> bool:
        if cached.state.disabled_by is DisabledBy.CLEANUP:
            # SPEC §4.2, last row: only an authentication attempt revives a never-used user,
            # so such an attempt always reads, whatever the window says.
            return True
        return cached.last_sync_at is None or cached.last_sync_at <= now - self._interval

    def _sync_known(
        self, subject: Subject, directory: UserDirectory, cached: CachedUser
    ) -> JitResult:
        """The read of a stored user whose window has passed (`sync` checked it)."""
        now = self._clock()
        # A never-used record is due whatever its last sync (see `_due`).
        never_used = cached.state.disabled_by is DisabledBy.CLEANUP
        synced_before = now + timedelta(seconds=1) if never_used else now - self._interval
        claimed = self._writes.claim(
            cached.id, now=now, synced_before=synced_before, until=self._claim_until(now)
        )
        if not claimed:
            return self._await_other(
                lambda s: queries.user_claim_live(s, cached.id, self._clock()),
                lambda: _reload(self._store, cached.id),
                cached,
            )

        entry, ok = self._read(subject, lambda: directory.read_user(cached.external_id))
        if not ok:
            with self._store.writing() as session:
                queries.release_sync_claim(session, cached.id)
            return JitResult(Freshness.FAILED, cached)
        source = _directory_source(subject)
        if entry is not None:
            quiet = self._unchanged(source, cached, entry)
            if quiet is not None:
                return quiet
        with self._store.writing() as session:
            if entry is None:
                result = self._users.apply_missing(
                    session, source.id, cached.external_id, Trigger.JIT
                )
                dn, user_name = cached.dn, cached.user_name
            else:
                report = to_source_user(entry, source, self._clock())
                result = self._users.apply_report(
                    session, source.id, report, Trigger.JIT, view=False
                )
                dn, user_name = entry.dn, report.user_name
        # The record as this sync left it, without reading back the row just written.
        assert result.state is not None
        synced = replace(
            cached, state=result.state, dn=dn, user_name=user_name, last_sync_at=self._clock()
        )
        self._remember(synced)
        return JitResult(Freshness.READ, synced, entry, result)

    def _unchanged(
        self, source: LdapSource | AdSource, cached: CachedUser, entry: DirectoryEntry
    ) -> JitResult | None:
        """A read that finds the user as stored: the mark goes to the group writer and the
        bind goes on without waiting for its commit (None: something changed)."""
        at = self._clock()  # before the compared read: a later change stays after it
        report = to_source_user(entry, source, at)
        with self._store.reading() as session:
            quiet = self._users.unchanged(session, source.id, report, Trigger.JIT)
        if quiet is None or quiet.user_id != cached.id or quiet.state is None:
            return None
        self._writes.mark(cached.id, at)
        synced = replace(
            cached, state=quiet.state, dn=entry.dn, user_name=report.user_name, last_sync_at=at
        )
        return JitResult(Freshness.READ, synced, entry, quiet)

    def _sync_new(self, subject: Subject, directory: UserDirectory) -> JitResult:
        source = _directory_source(subject)
        now = self._clock()
        with self._store.writing() as session:
            claimed = queries.claim_name_window(
                session,
                source.id,
                subject.key,
                now=now,
                read_before=now - self._interval,
                until=self._claim_until(now),
            )
        if not claimed:
            with self._store.reading() as session:
                live = queries.name_claim_live(session, source.id, subject.key, now)
            if not live:
                # Read within the window: by a concurrent attempt that may just have added the
                # user, or earlier and not added (unknown, or disabled upstream).
                user = lookup(self._store, subject)
                return JitResult(Freshness.SHARED if user else Freshness.THROTTLED, user)
            return self._await_other(
                lambda s: queries.name_claim_live(s, source.id, subject.key, self._clock()),
                lambda: lookup(self._store, subject),
                None,
            )

        entry, ok = self._read(subject, lambda: directory.find_user(subject.kind, subject.value))
        if not ok:
            with self._store.writing() as session:
                queries.release_name_claim(session, source.id, subject.key)
            return JitResult(Freshness.FAILED, None)
        result = None
        user = None
        # The user's record and the end of the name's read commit together.
        with self._store.writing() as session:
            if entry is not None:
                report = to_source_user(entry, source, self._clock())
                result = self._users.apply_report(session, source.id, report, Trigger.JIT)
                if result.view is not None:
                    user = CachedUser.synced(result.view)
            queries.finish_name_read(session, source.id, subject.key, self._clock())
        if user is not None:
            self._remember(user)
        if result is not None and result.outcome is Outcome.NOT_SYNCHRONIZED:
            log.info("jit: %s not added (%s)", source.id, result.not_synchronized_reason)
        return JitResult(Freshness.READ, user, entry, result)

    def _read(
        self, subject: Subject, read: Callable[[], DirectoryEntry | None]
    ) -> tuple[DirectoryEntry | None, bool]:
        """Run one upstream read under the deadline. Returns (entry, succeeded)."""
        started = time.monotonic()
        future: Future[DirectoryEntry | None] = self._executor.submit(read)
        try:
            entry = future.result(timeout=self._deadline)
        except FutureTimeout:
            # The late answer is dropped when it comes; the next attempt reads again.
            future.cancel()
            log.warning("jit: read for source %s passed its deadline", subject.source.id)
            self._on_read(subject.source.id, False, time.monotonic() - started)
            return None, False
        except UpstreamError as exc:
            log.warning("jit: read for source %s failed: %s", subject.source.id, exc)
            self._on_read(subject.source.id, False, time.monotonic() - started)
            return None, False
        self._on_read(subject.source.id, True, time.monotonic() - started)
        return entry, True

    def _await_other(
        self,
        live: Callable[..., bool],
        reload: Callable[[], CachedUser | None],
        cached: CachedUser | None,
    ) -> JitResult:
        """Another attempt holds the claim: wait (up to the deadline) for its result."""
        give_up = time.monotonic() + self._deadline
        while time.monotonic() < give_up:
            with self._store.reading() as session:
                done = not live(session)
            # Reload outside the polling session: holding two connections per waiting thread
            # would let a burst of binds exhaust the pool.
            if done:
                return JitResult(Freshness.SHARED, reload())
            time.sleep(_POLL_SECONDS)
        return JitResult(Freshness.FAILED, cached)


def _directory_source(subject: Subject) -> LdapSource | AdSource:
    source = subject.source
    assert isinstance(source, LdapSource | AdSource), "JIT sync is for directory sources"
    return source
