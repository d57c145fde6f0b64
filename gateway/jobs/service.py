"""Jobs: bulk sync, refresh and cleanup runs, and "resync all" (SPEC §5.3-§5.6).

A job is a row of `sync_jobs` and a lease. Starting one takes the lease of what it works on
(`job:<source>` for a source's bulk sync or refresh, `job:cleanup`) in the same transaction
that inserts the row, so only one process of all those sharing the store runs it. While it
works, a heartbeat renews both every third of `sync.job_lease_seconds`; a process that dies
stops renewing, and the next start, status read or gateway start marks the job `interrupted`
(what it wrote stays: every page commits with its own counts, so the counts always describe
the store). A new run replaces the previous run's details lists.

States: running → stopping (a stop was asked) → stopped; running → succeeded | failed;
running | stopping → interrupted (the process died or shut down); running → held (the
mass-disable guard: the run would disable too many users and disabled none, SPEC §5.3) →
running (a super admin confirmed: exactly the held users are disabled) → succeeded, or
held → discarded (a super admin discarded the list, or a newer run of the source began).

The work itself (`gateway.jobs.bulk`, `gateway.jobs.daily`) is a callable given a `Progress`: it
checks `stopping()` between pages, hands each page's results to `record()` inside the page's
transaction, and returns whether it finished. It raises `UpstreamError` when its source
cannot be read.

Blocking: the methods do database I/O; callers on an event loop run them in a thread pool.
Jobs run in their own threads.
"""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from gateway.engine.plan import Outcome
from gateway.engine.roles import Permission
from gateway.errors import Conflict, IdgateError, InvalidInput, NotFound
from gateway.users.service import SYSTEM, Actor, Clock, SyncResult
from store import job_columns
from store import jobs as queries
from store import users as user_queries
from store.db import Store
from store.models import SyncJob, SyncJobDetail

log = logging.getLogger(__name__)


class JobKind(StrEnum):
    BULK = "bulk"
    REFRESH = "refresh"
    CLEANUP = "cleanup"


class JobState(StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    #: Waits for a super admin to confirm or discard the disables it held (SPEC §5.3).
    HELD = "held"
    DISCARDED = "discarded"


LIVE = frozenset(JobState(state) for state in job_columns.LIVE_STATES)
#: Kinds that work on one source; cleanup works on every source at once.
PER_SOURCE = frozenset({JobKind.BULK, JobKind.REFRESH})
#: The categories of a job's details lists (SPEC §5.3), plus cleanup's deletions, refresh's
#: failed reads and the users the mass-disable guard held: every counter but `read`. Named
#: here too for the fronts, which may not import the store.
CATEGORIES = job_columns.CATEGORIES

INTERRUPTED_REASON = "the gateway process running it stopped before it finished"
#: Hold rows per INSERT.
HOLD_PAGE = 5000
#: How the details list `held` says what the source reported.
HELD_TEXT = {
    "disabled": "would be disabled: disabled in the source",
    "expired": "would be disabled: expired in the source",
    "missing": "would be disabled: missing from the source (deleted or out of scope)",
}
SHUTDOWN_REASON = "the gateway shut down while it ran"


@dataclass(frozen=True)
class Counts:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    disabled: int = 0
    not_synchronized: int = 0
    deleted: int = 0
    failed: int = 0
    held: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in job_columns.COUNTERS}


@dataclass(frozen=True)
class JobView:
    id: int
    kind: JobKind
    source_id: str | None
    state: JobState
    requested_by: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    batch_id: str | None
    counts: Counts
    #: Why the mass-disable guard held the run (state held, or confirmed or discarded since).
    held_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state not in LIVE


@dataclass(frozen=True)
class JobDetail:
    category: str
    user_name: str
    external_id: str | None
    reason: str


@dataclass(frozen=True)
class Hold:
    """A user a held job would disable."""

    id: int
    user_id: str
    user_name: str
    external_id: str
    #: What the source reported: disabled, expired or missing.
    source_status: str


@dataclass(frozen=True)
class ResyncView:
    """A "resync all" (SPEC §5.6): one bulk job per directory source."""

    batch_id: str
    jobs: tuple[JobView, ...]
    #: Sources whose job could not start, with why (a job of theirs is running already).
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def done(self) -> bool:
        return all(job.done for job in self.jobs)


class JobRunning(Conflict):
    """A job of this source (or a cleanup) is running already, here or in another process."""

    def __init__(self, what: str, job_id: int | None) -> None:
        running = f" (job {job_id})" if job_id is not None else ""
        super().__init__(f"a job of {what} is running already{running}")
        self.job_id = job_id


class Progress:
    """What a running job's work reports to, and asks whether to stop."""

    def __init__(self, jobs: "Jobs", job: SyncJob, details_limit: int) -> None:
        self._jobs = jobs
        self.job_id = job.id
        self.kind = JobKind(job.kind)
        self.source_id = job.source_id
        self.started_at = job.started_at
        self._limit = details_limit
        self._listed: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self._stop = threading.Event()
        self._lost = threading.Event()
        #: Set by `hold`: the run ends `held` instead of succeeded.
        self.held_reason: str | None = None

    def stopping(self) -> bool:
        """Whether the work should stop now (a stop was asked, the gateway is shutting down,
        or another process took the job over after this one's lease ran out)."""
        return self._stop.is_set() or self._lost.is_set()

    def record(
        self,
        session: Session,
        results: Sequence[SyncResult],
        names: Sequence[tuple[str, str | None]],
        *,
        read: int = 0,
    ) -> None:
        """Count a page's results and list them, in the page's own transaction.

        Args:
            names: (user_name, external_id) of each result's user, for the details lists.
            read: how many entries the page read from the source.
        """
        counts = dict.fromkeys(job_columns.COUNTERS, 0)
        counts["read"] = read
        details: list[tuple[str, str, str | None, str]] = []
        for result, (user_name, external_id) in zip(results, names, strict=True):
            category = category_of(result)
            if category is None:
                continue
            counts[category] += 1
            if self._listed[category] < self._limit:
                self._listed[category] += 1
                details.append((category, user_name, external_id, reason_of(result)))
        self.count(session, details=details, **counts)

    def count(
        self,
        session: Session,
        *,
        details: Iterable[tuple[str, str, str | None, str]] = (),
        **counts: int,
    ) -> None:
        """Add to the counters and details lists directly (cleanup, failed reads)."""
        listed = []
        for category, user_name, external_id, reason in details:
            listed.append((category, user_name, external_id, reason))
        queries.add_counts(session, self.job_id, counts)
        queries.add_details(session, self.job_id, listed)
        # A stop asked through another process is seen at the next page, not the heartbeat.
        job = queries.get_job(session, self.job_id)
        if job is not None and job.stop_requested:
            self._stop.set()
        self._jobs.observe(self.kind, self.source_id, counts)

    def hold(self, reason: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Keep the disables the mass-disable guard held, for a super admin (SPEC §5.3).

        Args:
            reason: why the run was held (which threshold, how many).
            rows: (user id, external id, user name, what the source reported) of every user
                the run would have disabled; all are kept, the first ones also in the
                details list `held`.
        """
        store = self._jobs.store
        with store.writing() as session:
            for start in range(0, len(rows), HOLD_PAGE):
                queries.add_holds(session, self.job_id, rows[start : start + HOLD_PAGE])
            details = [
                ("held", user_name, external_id, HELD_TEXT.get(status, status))
                for _, external_id, user_name, status in rows
                if self.listed("held")
            ]
            job = queries.get_job(session, self.job_id)
            assert job is not None
            job.held_reason = reason
            self.count(session, details=details, held=len(rows))
        self.held_reason = reason

    def listed(self, category: str) -> bool:
        """Whether a details row of `category` still fits (for callers that use `count`)."""
        if self._listed[category] >= self._limit:
            return False
        self._listed[category] += 1
        return True


#: Runs a job; returns True when it did all its work, False when it stopped early because
#: `Progress.stopping()` said so; raises IdgateError (an upstream failure) to fail the job.
Work = Callable[[Progress], bool]
#: Builds the work of a kind for a source (None for cleanup); raises NotFound or
#: InvalidInput when that source cannot have such a job.
WorkFactory = Callable[[JobKind, str | None], Work]
#: Builds the work that disables what a held job holds, given when the job read them.
ReleaseFactory = Callable[[datetime], Work]
#: Told of every change of a job's counts: (kind, source, {counter: amount}).
Observer = Callable[[JobKind, str | None, Mapping[str, int]], None]
#: Sends the completion notice of a resync: (event, summary).
Notify = Callable[[str, Mapping[str, Any]], None]


@dataclass
class _Running:
    progress: Progress
    thread: threading.Thread
    heartbeat: threading.Thread
    done: threading.Event = field(default_factory=threading.Event)


class Jobs:
    """Starts, stops, and reports on jobs; runs the ones this process started."""

    def __init__(
        self,
        store: Store,
        works: WorkFactory,
        *,
        directory_sources: Callable[[], Sequence[str]],
        clock: Clock,
        lease_seconds: float = 60.0,
        details_limit: int = 400,
        owner: str | None = None,
        observe: Observer | None = None,
        notify: Notify | None = None,
        releases: ReleaseFactory | None = None,
        on_finish: Callable[[JobView], None] | None = None,
    ) -> None:
        """
        Args:
            works: builds the work of a job (see `WorkFactory`).
            releases: builds the work of a confirmed held job (see `ReleaseFactory`).
            on_finish: told of every job this process ends, as it ended (metrics).
            directory_sources: the ids of the directory sources a resync covers.
            lease_seconds: how long a job's lease lasts without renewal; a process that
                dies holds the job this long at most.
            owner: this process's name in leases (default: host, pid and a random part).
        """
        self._store = store
        self._works = works
        self._directory_sources = directory_sources
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._details_limit = details_limit
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._observe = observe
        self._notify = notify
        self._releases = releases
        self._on_finish = on_finish
        self._running: dict[int, _Running] = {}
        self._announcers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()

    @property
    def store(self) -> Store:
        return self._store

    def observe(self, kind: JobKind, source_id: str | None, counts: Mapping[str, int]) -> None:
        if self._observe is not None:
            self._observe(kind, source_id, counts)

    # -- starting and stopping -------------------------------------------------------------

    def start(
        self,
        actor: Actor,
        kind: JobKind,
        source_id: str | None = None,
        *,
        batch_id: str | None = None,
    ) -> JobView:
        """Start a job; it runs in a thread of this process.

        Raises:
            PermissionDenied: the actor may not run jobs (help desk).
            InvalidInput: a source given for cleanup, or none for bulk/refresh.
            NotFound, InvalidInput: the source does not exist or cannot have this job.
            JobRunning: a job of the same source (or a cleanup) is running already.
        """
        if actor is not SYSTEM:
            actor.require(Permission.RUN_JOBS)
        if self._closing.is_set():
            raise JobRunning("this gateway (it is shutting down)", None)
        if kind in PER_SOURCE and source_id is None:
            raise InvalidInput("source", f"a {kind} job needs a source")
        if kind not in PER_SOURCE and source_id is not None:
            raise InvalidInput("source", f"a {kind} job covers every source; give none")
        work = self._works(kind, source_id)
        lease = _lease_name(kind, source_id)
        now = self._clock()
        with self._store.writing() as session:
            queries.mark_interrupted(session, now, INTERRUPTED_REASON)
            if not queries.take_lease(
                session, lease, self.owner, now, now + self._lease, reentrant=False
            ):
                live = queries.live_job(session, source_id, None if source_id else kind.value)
                raise JobRunning(_what(kind, source_id), live.id if live else None)
            job = SyncJob(
                source_id=source_id,
                kind=kind.value,
                state=JobState.RUNNING.value,
                requested_by=actor.name,
                started_at=now,
                lease_owner=self.owner,
                lease_expires_at=now + self._lease,
                stop_requested=False,
                batch_id=batch_id,
                **dict.fromkeys(job_columns.COUNTERS, 0),
            )
            session.add(job)
            session.flush()
            if source_id is not None:
                # A held run's list was read before this run: this run reads the source anew.
                for held in queries.held_jobs(session, source_id, job.id):
                    self._discard(session, held, "system", f"superseded by job {job.id}", now)
            queries.clear_details(session, source_id, kind.value, job.id)
            user_queries.add_audit_event(
                session,
                at=now,
                actor=actor.name,
                action="job.started",
                source_id=source_id,
                details={"job": job.id, "kind": kind.value, "batch": batch_id},
            )
            view = _view(job)
            progress = Progress(self, job, self._details_limit)
        self._launch(progress, work)
        log.info("job %d (%s) started by %s", view.id, job_name(kind, source_id), actor.name)
        return view

    def _launch(self, progress: Progress, work: Work) -> None:
        running = _Running(
            progress,
            threading.Thread(
                target=self._run,
                args=(progress, work),
                name=f"idgate-job-{progress.job_id}",
                daemon=True,
            ),
            threading.Thread(
                target=self._beat,
                args=(progress,),
                name=f"idgate-job-{progress.job_id}-lease",
                daemon=True,
            ),
        )
        with self._lock:
            self._running[progress.job_id] = running
        running.heartbeat.start()
        running.thread.start()

    def stop(self, actor: Actor, job_id: int) -> JobView:
        """Ask a job to stop after its current page; what it wrote stays (SPEC §5.3).

        Raises:
            NotFound: no such job.
            Conflict: the job has ended already.
        """
        actor.require(Permission.RUN_JOBS)
        with self._store.writing() as session:
            job = self._job(session, job_id)
            if JobState(job.state) not in LIVE:
                raise Conflict(f"job {job_id} has ended already ({job.state})")
            job.stop_requested = True
            job.state = JobState.STOPPING.value
            user_queries.add_audit_event(
                session,
                at=self._clock(),
                actor=actor.name,
                action="job.stop_requested",
                source_id=job.source_id,
                details={"job": job_id, "kind": job.kind},
            )
            view = _view(job)
        with self._lock:
            running = self._running.get(job_id)
        if running is not None:
            running.progress._stop.set()
        return view

    def confirm(self, actor: Actor, job_id: int) -> JobView:
        """Disable exactly the users a held job holds (SPEC §5.3); the job runs again, in this
        process, and ends succeeded. Users synced since the job read them are left as that
        newer sync made them.

        Raises:
            PermissionDenied: the actor may not run jobs.
            NotFound: no such job.
            Conflict: the job is not held (never was, or was confirmed or discarded already).
            JobRunning: another job of the source is running.
        """
        actor.require(Permission.RUN_JOBS)
        if self._releases is None:
            raise Conflict("this gateway cannot confirm held jobs")
        if self._closing.is_set():
            raise JobRunning("this gateway (it is shutting down)", None)
        now = self._clock()
        with self._store.writing() as session:
            job = self._held(session, job_id)
            lease = _lease_name(JobKind(job.kind), job.source_id)
            if not queries.take_lease(
                session, lease, self.owner, now, now + self._lease, reentrant=False
            ):
                live = queries.live_job(session, job.source_id)
                raise JobRunning(_what(JobKind(job.kind), job.source_id), live.id if live else None)
            read_before = job.ended_at or now
            job.state = JobState.RUNNING.value
            job.ended_at = None
            job.lease_owner = self.owner
            job.lease_expires_at = now + self._lease
            job.stop_requested = False
            user_queries.add_audit_event(
                session,
                at=now,
                actor=actor.name,
                action="job.confirmed",
                source_id=job.source_id,
                details={"job": job.id, "kind": job.kind, "held": job.held},
            )
            view = _view(job)
            progress = Progress(self, job, self._details_limit)
        self._launch(progress, self._releases(read_before))
        log.info("job %d: %s confirmed its %d held disables", job_id, actor.name, view.counts.held)
        return view

    def discard(self, actor: Actor, job_id: int) -> JobView:
        """Drop a held job's list: nobody it held is disabled (SPEC §5.3).

        Raises:
            PermissionDenied, NotFound, Conflict: as `confirm`.
        """
        actor.require(Permission.RUN_JOBS)
        with self._store.writing() as session:
            job = self._held(session, job_id)
            self._discard(session, job, actor.name, None, self._clock())
            view = _view(job)
        log.info("job %d: %s discarded its %d held disables", job_id, actor.name, view.counts.held)
        return view

    def holds(self, actor: Actor, job_id: int, *, after: int = 0, limit: int = 1000) -> list[Hold]:
        """A page of the users a held job would disable (all of them, unlike its details)."""
        actor.require(Permission.RUN_JOBS)
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit", "must be between 1 and 10000")
        with self._store.reading() as session:
            self._job(session, job_id)
            return [
                Hold(row.id, row.user_id, row.user_name, row.external_id, row.source_status)
                for row in queries.holds(session, job_id, after, limit)
            ]

    def _held(self, session: Session, job_id: int) -> SyncJob:
        job = self._job(session, job_id)
        if job.state != JobState.HELD.value:
            raise Conflict(f"job {job_id} is not held ({job.state})")
        return job

    def _discard(
        self, session: Session, job: SyncJob, actor: str, why: str | None, now: datetime
    ) -> None:
        job.state = JobState.DISCARDED.value
        job.ended_at = now
        if why is not None:
            job.error = why
        queries.drop_holds(session, job.id)
        user_queries.add_audit_event(
            session,
            at=now,
            actor=actor,
            action="job.discarded",
            source_id=job.source_id,
            details={"job": job.id, "kind": job.kind, "held": job.held, "why": why},
        )

    def resync_all(self, actor: Actor) -> ResyncView:
        """One bulk job per directory source, and a completion notice when all have ended
        (SPEC §5.6). Sources with a job running already are skipped and listed.

        Raises:
            PermissionDenied: the actor may not run jobs.
            InvalidInput: there is no directory source.
            JobRunning: every source has a job running already.
        """
        actor.require(Permission.RUN_JOBS)
        sources = list(self._directory_sources())
        if not sources:
            raise InvalidInput("sources", "there is no ldap or ad source to resync")
        batch_id = str(uuid.uuid4())
        jobs: list[JobView] = []
        skipped: list[tuple[str, str]] = []
        for source_id in sources:
            try:
                jobs.append(self.start(actor, JobKind.BULK, source_id, batch_id=batch_id))
            except JobRunning as exc:
                skipped.append((source_id, str(exc)))
        if not jobs:
            raise JobRunning("every directory source", None)
        with self._store.writing() as session:
            user_queries.add_audit_event(
                session,
                at=self._clock(),
                actor=actor.name,
                action="resync.started",
                details={"batch": batch_id, "jobs": [j.id for j in jobs], "skipped": skipped},
            )
        view = ResyncView(batch_id, tuple(jobs), tuple(skipped))
        announcer = threading.Thread(
            target=self._announce,
            args=(view, actor),
            name=f"idgate-resync-{batch_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._announcers = [t for t in self._announcers if t.is_alive()] + [announcer]
        announcer.start()
        return view

    # -- reading ---------------------------------------------------------------------------

    def get(self, actor: Actor, job_id: int) -> JobView:
        actor.require(Permission.RUN_JOBS)
        self.recover()
        with self._store.reading() as session:
            return _view(self._job(session, job_id))

    def details(
        self, actor: Actor, job_id: int, *, category: str | None = None, limit: int = 400
    ) -> list[JobDetail]:
        """A job's details lists (at most `sync.details_limit` users per category)."""
        actor.require(Permission.RUN_JOBS)
        if category is not None and category not in CATEGORIES:
            raise InvalidInput("category", f"must be one of {', '.join(CATEGORIES)}")
        with self._store.reading() as session:
            self._job(session, job_id)
            rows = queries.details(session, job_id, category=category, limit=limit)
            return [_detail(row) for row in rows]

    def history(
        self,
        actor: Actor,
        *,
        source_id: str | None = None,
        kind: JobKind | None = None,
        batch_id: str | None = None,
        limit: int = 50,
    ) -> list[JobView]:
        actor.require(Permission.RUN_JOBS)
        self.recover()
        with self._store.reading() as session:
            jobs = queries.history(
                session,
                source_id=source_id,
                kind=kind.value if kind else None,
                batch_id=batch_id,
                limit=limit,
            )
            return [_view(job) for job in jobs]

    def batch(self, actor: Actor, batch_id: str) -> ResyncView:
        jobs = self.history(actor, batch_id=batch_id, limit=1000)
        if not jobs:
            raise NotFound(f"no resync with id {batch_id}")
        return ResyncView(batch_id, tuple(sorted(jobs, key=lambda j: j.id)))

    def wait(self, job_id: int, timeout: float | None = None) -> JobView:
        """Wait for a job this process runs to end (tests and the in-process CLI)."""
        with self._lock:
            running = self._running.get(job_id)
        if running is not None:
            running.done.wait(timeout)
        with self._store.reading() as session:
            return _view(self._job(session, job_id))

    def recover(self) -> int:
        """Mark jobs whose process stopped renewing their lease `interrupted`; returns how many.

        Every status read calls this: it writes only when there is something to mark, so a
        client following a job never waits for the job's own writes (SQLite has one writer).
        """
        now = self._clock()
        with self._store.reading() as session:
            if not queries.any_lease_expired(session, now):
                return 0
        with self._store.writing() as session:
            jobs = queries.mark_interrupted(session, now, INTERRUPTED_REASON)
            for job in jobs:
                name = job_name(job.kind, job.source_id)
                log.warning("job %d (%s) was interrupted", job.id, name)
            return len(jobs)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the jobs this process runs (they end `interrupted`: nobody asked them to stop,
        and another process may run them again) and wait up to `timeout` for them."""
        self._closing.set()
        with self._lock:
            running = list(self._running.values())
        for entry in running:
            entry.progress._stop.set()
        for entry in running:
            entry.done.wait(timeout)
        with self._lock:
            announcers = list(self._announcers)
        for announcer in announcers:  # it writes the resync's audit event: not after close
            announcer.join(timeout)

    # -- running ---------------------------------------------------------------------------

    def _run(self, progress: Progress, work: Work) -> None:
        error: str | None = None
        complete = False
        try:
            complete = work(progress)
        except IdgateError as exc:
            error = str(exc)
        except Exception as exc:  # a bug must end the job, not leave it running for ever
            log.exception("job %d failed", progress.job_id)
            error = f"internal error: {type(exc).__name__}"
        try:
            self._finish(progress, complete, error)
        finally:
            with self._lock:
                running = self._running.pop(progress.job_id, None)
            if running is not None:
                running.done.set()

    def _finish(self, progress: Progress, complete: bool, error: str | None) -> None:
        if progress._lost.is_set():
            log.warning("job %d lost its lease; another process took it over", progress.job_id)
            return
        now = self._clock()
        with self._store.writing() as session:
            job = self._job(session, progress.job_id)
            if error is not None:
                state, job.error = JobState.FAILED, error
            elif complete and progress.held_reason is not None:
                state = JobState.HELD
            elif complete:
                state = JobState.SUCCEEDED
            elif self._closing.is_set() and not job.stop_requested:
                state, job.error = JobState.INTERRUPTED, SHUTDOWN_REASON
            else:
                state = JobState.STOPPED
            job.state = state.value
            job.ended_at = now
            job.lease_owner = None
            queries.release_lease(
                session, _lease_name(progress.kind, progress.source_id), self.owner
            )
            user_queries.add_audit_event(
                session,
                at=now,
                actor=job.requested_by,
                action="job.finished",
                source_id=job.source_id,
                details={"job": job.id, "kind": job.kind, "state": state.value, "error": error},
            )
            view = _view(job)
            counts = view.counts
        if self._on_finish is not None:
            self._on_finish(view)
        log.info(
            "job %d (%s) %s: %s%s",
            progress.job_id,
            job_name(progress.kind, progress.source_id),
            state,
            ", ".join(f"{k} {v}" for k, v in counts.as_dict().items()),
            f"; {error}" if error else "",
        )

    def _beat(self, progress: Progress) -> None:
        """Renew the job's lease until it ends; notice a stop asked through another process."""
        interval = self._lease.total_seconds() / 3
        with self._lock:
            running = self._running[progress.job_id]
        lease = _lease_name(progress.kind, progress.source_id)
        while not running.done.wait(interval):
            try:
                until = self._clock() + self._lease
                with self._store.writing() as session:
                    mine, state = queries.renew_job(session, progress.job_id, self.owner, until)
                    if mine:
                        mine = queries.renew_lease(session, lease, self.owner, until)
            except Exception:  # a store hiccup: try again at the next beat, the lease has slack
                log.warning("job %d: could not renew its lease", progress.job_id, exc_info=True)
                continue
            if not mine:
                progress._lost.set()
                return
            if state == JobState.STOPPING:
                progress._stop.set()

    def _announce(self, view: ResyncView, actor: Actor) -> None:
        """Wait for a resync's jobs, then send the completion notice (SPEC §5.6)."""
        for job in view.jobs:
            self.wait(job.id)
        with self._store.reading() as session:
            jobs = [_view(self._job(session, job.id)) for job in view.jobs]
        summary = resync_summary(view.batch_id, actor.name, jobs, view.skipped)
        if self._closing.is_set() and not all(job.done for job in jobs):
            return
        deliveries: Any = None
        if self._notify is not None:
            try:
                deliveries = self._notify("resync.completed", summary)
            except Exception:
                log.exception("resync %s: the completion notice failed", view.batch_id)
        with self._store.writing() as session:
            user_queries.add_audit_event(
                session,
                at=self._clock(),
                actor="system",
                action="resync.completed",
                details={"batch": view.batch_id, "summary": summary, "notice": deliveries},
            )

    def _job(self, session: Session, job_id: int) -> SyncJob:
        job = queries.get_job(session, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        return job


def resync_summary(
    batch_id: str,
    requested_by: str,
    jobs: Sequence[JobView],
    skipped: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The summary a resync's completion notice carries."""
    total = dict.fromkeys(job_columns.COUNTERS, 0)
    for job in jobs:
        for name, value in job.counts.as_dict().items():
            total[name] += value
    return {
        "batch": batch_id,
        "requested_by": requested_by,
        "succeeded": all(job.state is JobState.SUCCEEDED for job in jobs) and not skipped,
        "started_at": min(job.started_at for job in jobs).isoformat(),
        "ended_at": max(e).isoformat() if (e := [j.ended_at for j in jobs if j.ended_at]) else None,
        "totals": total,
        "jobs": [
            {
                "job": job.id,
                "source": job.source_id,
                "state": job.state.value,
                "error": job.error,
                "counts": job.counts.as_dict(),
            }
            for job in jobs
        ],
        "skipped": [{"source": source, "reason": reason} for source, reason in skipped],
    }


def category_of(result: SyncResult) -> str | None:
    """The details list a sync result belongs to (None: not counted)."""
    if result.outcome in (Outcome.IGNORED, Outcome.DEFERRED):
        return None
    return result.outcome.value


def reason_of(result: SyncResult) -> str:
    """The reason a details row shows."""
    if result.outcome is Outcome.NOT_SYNCHRONIZED:
        return result.not_synchronized_reason or "not synchronized"
    if result.outcome is Outcome.DISABLED and result.state is not None:
        return result.state.reason.value if result.state.reason else "disabled"
    if result.outcome is Outcome.ADDED:
        return "new in the source"
    if result.outcome is Outcome.UPDATED:
        return f"source data changed ({result.rule})" if result.rule else "source data changed"
    return "no change"


def _lease_name(kind: JobKind, source_id: str | None) -> str:
    return f"job:{source_id}" if source_id is not None else f"job:{kind.value}"


def _what(kind: JobKind, source_id: str | None) -> str:
    return f"source {source_id}" if source_id is not None else kind.value


def job_name(kind: object, source_id: str | None) -> str:
    """A job as the logs name it: its kind, and its source when it has one ("bulk of corp")."""
    return f"{kind} of {source_id}" if source_id else f"{kind}"


def _view(job: SyncJob) -> JobView:
    return JobView(
        id=job.id,
        kind=JobKind(job.kind),
        source_id=job.source_id,
        state=JobState(job.state),
        requested_by=job.requested_by,
        started_at=job.started_at,
        ended_at=job.ended_at,
        error=job.error,
        batch_id=job.batch_id,
        counts=Counts(**{name: getattr(job, name) or 0 for name in job_columns.COUNTERS}),
        held_reason=job.held_reason,
    )


def _detail(row: SyncJobDetail) -> JobDetail:
    return JobDetail(row.category, row.user_name, row.external_id, row.reason)
