"""The daily jobs: user refresh (SPEC §5.4) and cleanup (SPEC §5.5), and their scheduler.

The scheduler runs in every gateway process; each daily job runs once per day across all of
them because starting it first takes the period's lease (`schedule:<job>`, held until the
next day's run time) with one conditional UPDATE. A job that cannot start (a bulk sync of the
source is running) gives the period back for a retry a little later.
"""

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, time, timedelta

from sqlalchemy.orm import Session

from gateway.config import AdSource, LdapSource, SyncConfig
from gateway.directory import DirectoryEntry, IncompleteEntry, to_source_user
from gateway.engine.guard import DisableLimits
from gateway.engine.plan import Outcome, SourceUser
from gateway.engine.types import Status, Trigger
from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.jobs.guard import Disables
from gateway.jobs.service import JobKind, JobRunning, Jobs, JobView, Progress, job_name
from gateway.users.service import SYSTEM, Clock, UserService
from store import jobs as job_queries
from store.db import Store

log = logging.getLogger(__name__)

#: Users a refresh reads before it writes them in one transaction.
REFRESH_PAGE = 100
#: Users per cleanup transaction.
CLEANUP_PAGE = 500
#: A user synced this recently (by any sync) is fresh: a refresh leaves it for another day.
FRESH_FOR = timedelta(hours=20)
#: How soon a daily job that could not start is tried again.
RETRY_AFTER = timedelta(minutes=15)


class Refresh:
    """The work of one source's daily refresh (a `gateway.jobs.service.Work`).

    Up to `sync.refresh_batch` users idle for longer than `sync.refresh_after_days` (the
    longest idle first) are re-read one by one and updated by SPEC §4.2: deleted, expired,
    disabled and out-of-scope ones are disabled, once the whole batch is read and through
    the mass-disable guard (`gateway.jobs.guard`). A read that fails changes nothing for that user
    (counted as failed), and so does one that could not look everywhere the user may be (a
    root missing: `IncompleteRead`); a directory that no server answers fails the job.
    """

    def __init__(
        self,
        source: LdapSource | AdSource,
        directory: Callable[[str], DirectoryEntry | None],
        users: UserService,
        store: Store,
        settings: SyncConfig,
        *,
        clock: Clock,
        limits: DisableLimits,
    ) -> None:
        """
        Args:
            directory: reads one user by the source's immutable id (`Directory.read_user`).
            limits: the source's mass-disable thresholds.
        """
        self._source = source
        self._read = directory
        self._users = users
        self._store = store
        self._settings = settings
        self._clock = clock
        self._limits = limits

    def __call__(self, progress: Progress) -> bool:
        now = self._clock()
        with self._store.reading() as session:
            candidates = job_queries.idle_users(
                session,
                self._source.id,
                idle_before=now - timedelta(days=self._settings.refresh_after_days),
                synced_before=now - FRESH_FOR,
                limit=self._settings.refresh_batch,
            )
        disables = Disables(
            self._source.id, self._users, self._store, self._limits, Trigger.REFRESH
        )
        for start in range(0, len(candidates), REFRESH_PAGE):
            if progress.stopping():
                return False
            self._refresh(progress, candidates[start : start + REFRESH_PAGE], disables)
        return disables.settle(progress)

    def _refresh(
        self, progress: Progress, page: Sequence[tuple[str, str, str, str]], disables: Disables
    ) -> None:
        found: list[SourceUser] = []
        gone: list[tuple[str, str]] = []
        failed: list[tuple[str, str, str | None, str]] = []
        held_back = 0
        for user_id, external_id, user_name, status in page:
            try:
                entry = self._read(external_id)
                if entry is None and status == Status.ACTIVE:
                    disables.missing(user_id, external_id, user_name)
                    held_back += 1
                elif entry is None:
                    gone.append((user_name, external_id))
                else:
                    found.append(to_source_user(entry, self._source, self._clock()))
            except UpstreamUnavailable:
                raise  # no server answers: the job fails, with what it refreshed kept
            except (UpstreamError, IncompleteEntry) as exc:
                failed.append(("failed", user_name, external_id, str(exc)))
        if failed or held_back:
            # Read now, counted when the guard settles them: the read counts here.
            with self._store.writing() as session:
                listed = [row for row in failed if progress.listed("failed")]
                progress.count(
                    session, details=listed, failed=len(failed), read=len(failed) + held_back
                )
        if found:
            names = [(r.user_name, r.external_id) for r in found]
            with self._store.writing() as session:
                results = self._users.apply_batch(
                    session, self._source.id, found, Trigger.REFRESH, defer_disables=True
                )
                progress.record(session, results, names, read=len(names))
            disables.defer(found, results)
        if gone:
            with self._store.writing() as session:
                results = self._users.apply_missing_batch(
                    session,
                    self._source.id,
                    [external_id for _, external_id in gone],
                    Trigger.REFRESH,
                )
                progress.record(session, results, gone, read=len(gone))


class Cleanup:
    """The work of the daily cleanup (a `gateway.jobs.service.Work`), over every source.

    Users created at least `sync.cleanup_never_used_days` ago who never authenticated are
    disabled (`never_used`) and marked pending deletion; users pending deletion for
    `sync.pending_deletion_days` are deleted, each with an audit event.
    """

    def __init__(
        self, users: UserService, store: Store, settings: SyncConfig, *, clock: Clock
    ) -> None:
        self._users = users
        self._store = store
        self._settings = settings
        self._clock = clock

    def __call__(self, progress: Progress) -> bool:
        now = self._clock()
        created_before = now - timedelta(days=self._settings.cleanup_never_used_days)
        pending_before = now - timedelta(days=self._settings.pending_deletion_days)
        for ids in self._pages(progress, lambda s, a: job_queries.never_used(
            s, created_before, a, CLEANUP_PAGE
        )):  # fmt: skip
            with self._store.writing() as session:
                results = self._users.mark_never_used(session, ids)
                disabled = sum(1 for r in results if r.outcome is Outcome.DISABLED)
                updated = sum(1 for r in results if r.outcome is Outcome.UPDATED)
                progress.count(session, read=len(results), disabled=disabled, updated=updated)
        if progress.stopping():
            return False
        for ids in self._pages(progress, lambda s, a: job_queries.pending_since(
            s, pending_before, a, CLEANUP_PAGE
        )):  # fmt: skip
            with self._store.writing() as session:
                deleted = self._users.purge(session, ids, before=pending_before)
                details = [
                    ("deleted", user_name, external_id, "pending deletion expired")
                    for user_name, external_id in deleted
                    if progress.listed("deleted")
                ]
                progress.count(session, details=details, read=len(deleted), deleted=len(deleted))
        return not progress.stopping()

    def _pages(
        self, progress: Progress, query: Callable[[Session, str], list[str]]
    ) -> Iterator[list[str]]:
        """Pages of user ids in id order, each read in its own session, until none is left or
        the job is asked to stop."""
        after = ""
        while not progress.stopping():
            with self._store.reading() as session:
                ids = query(session, after)
            if not ids:
                return
            after = ids[-1]
            yield ids


class Scheduler:
    """Starts each daily job once a day, at `sync.daily_run_at` UTC, across every process."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        *,
        sources: Sequence[str],
        run_at: time,
        clock: Clock,
        owner: str,
    ) -> None:
        """
        Args:
            sources: the directory sources to refresh.
            owner: this process's name in the period leases.
        """
        self._store = store
        self._jobs = jobs
        self._tasks: list[tuple[JobKind, str | None]] = [
            (JobKind.REFRESH, source_id) for source_id in sources
        ] + [(JobKind.CLEANUP, None)]
        self._run_at = run_at
        self._clock = clock
        self._owner = owner

    def tick(self) -> list[JobView]:
        """Start every daily job that is due and not yet run in this period by any process."""
        now = self._clock()
        today = datetime.combine(now.date(), self._run_at, tzinfo=now.tzinfo)
        if now < today:
            return []
        until = today + timedelta(days=1)
        started = []
        for kind, source_id in self._tasks:
            lease = f"schedule:{kind.value}" + (f":{source_id}" if source_id else "")
            with self._store.writing() as session:
                due = job_queries.take_lease(
                    session, lease, self._owner, now, until, reentrant=False
                )
            if not due:
                continue
            try:
                started.append(self._jobs.start(SYSTEM, kind, source_id))
            except JobRunning as exc:
                log.info("daily %s postponed: %s", job_name(kind, source_id), exc)
                with self._store.writing() as session:
                    job_queries.renew_lease(session, lease, self._owner, now + RETRY_AFTER)
            except Exception:
                log.exception("daily %s could not start", job_name(kind, source_id))
        return started

    def run(self, stop: threading.Event, interval_seconds: float = 60.0) -> None:
        """Tick at once, then every `interval_seconds` until `stop` is set (the gateway's
        scheduler thread). A gateway started after the day's run time starts what is due
        without waiting an interval; the period leases keep that to once across processes."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the store may be down for a while; the next tick tries again
                log.warning("the daily jobs' scheduler could not run", exc_info=True)
            if stop.wait(interval_seconds):
                return
