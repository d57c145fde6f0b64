"""The services one gateway process runs on, wired from its configuration.

`build` opens the store and builds the directory connectors, the bind path, the jobs and the
admin services into a `Runtime`; `gateway.runtime.main` connects that runtime to both fronts.
Nothing here imports a front, and nothing is global: everything built is passed on explicitly.
"""

import dataclasses
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.auth.bindcache import BindRecords
from gateway.auth.binds import Authenticator
from gateway.auth.jit import JitSync
from gateway.auth.jitwrites import JitWrites
from gateway.auth.lastauth import LastAuthRecorder
from gateway.auth.password_change import PasswordChanges
from gateway.auth.ratelimit import FailureLimiter
from gateway.auth.tokens import BearerTokens
from gateway.config import AdSource, Config, LdapSource
from gateway.directory import Directory
from gateway.errors import InvalidInput, NotFound
from gateway.jobs.bulk import BulkSync
from gateway.jobs.daily import Cleanup, Refresh, Scheduler
from gateway.jobs.guard import ReleaseHolds
from gateway.jobs.notify import Notifier
from gateway.jobs.service import JobKind, Jobs, Work
from gateway.operations.admin import Administration, directory_ids
from gateway.operations.health import DirectoryWatch, Readiness
from gateway.runtime.metrics import Metrics
from gateway.runtime.workers import Workers
from gateway.users.admin import UserAdministration
from gateway.users.lookup import ExactLookup
from gateway.users.provisioning import Provisioning
from gateway.users.service import Clock, UserService, utcnow
from store import jobs as job_queries
from store import users as store_users
from store.db import Store
from store.migrate import check_schema, upgrade


@dataclass
class Runtime:
    """Everything one gateway process runs on; `close()` releases it in order."""

    config: Config
    store: Store
    users: UserService
    #: Administrators' actions on one user (the admin API's).
    user_admin: UserAdministration
    readiness: Readiness
    directories: dict[str, Directory]
    authenticator: Authenticator
    lookup: ExactLookup
    recorder: LastAuthRecorder
    upstream_pool: ThreadPoolExecutor
    #: The bounded threads of the bind path's and the LDAP front's blocking leaves.
    workers: Workers
    #: The bind records this process holds in memory (`Authenticator`'s).
    records: BindRecords
    #: The group writer of the JIT sync's claims and marks.
    jit_writes: JitWrites
    metrics: Metrics
    passwords: PasswordChanges
    provisioning: Provisioning
    tokens: BearerTokens
    jobs: Jobs
    scheduler: Scheduler
    administration: Administration
    closed: bool = field(default=False)
    _background: threading.Event = field(default_factory=threading.Event)

    def start_background(self, interval_seconds: float = 60.0) -> None:
        """Start the daily jobs' scheduler thread (when `sync.scheduler` is on)."""
        if not self.config.sync.scheduler:
            return
        threading.Thread(
            target=self.scheduler.run,
            args=(self._background, interval_seconds),
            name="idgate-scheduler",
            daemon=True,
        ).start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._background.set()
        self.jobs.close()  # running jobs end `interrupted` at their next page
        self.recorder.close()  # writes the last batch of last_auth_at
        self.upstream_pool.shutdown(wait=False, cancel_futures=True)
        self.workers.stop()
        self.jit_writes.close()  # commits the marks still queued
        self.records.close()
        for directory in self.directories.values():
            directory.close()
        self.store.close()


def build(config: Config, *, migrate: bool = False) -> Runtime:
    """Open the store and build the services.

    Args:
        migrate: bring the schema to head first (the zero-config demo start does this);
            otherwise a schema that is not at head stops the start with the command to run.

    Returns:
        The process's services, the daily jobs not yet started (`start_background`);
        `close()` releases them.

    Raises:
        SchemaOutOfDate: the schema is behind and `migrate` is False.
    """
    store = _open_store(config, migrate=migrate)
    users = UserService(clock=utcnow)
    metrics = _restored_metrics(store)
    watch = DirectoryWatch(
        directory_ids(config), clock=utcnow, on_answer=metrics.directory_answered
    )
    directories = _directories(config, metrics, watch)
    upstream_pool = _upstream_pool(config)
    recorder = LastAuthRecorder(store)  # starts the thread that writes last_auth_at
    workers = Workers(config.ldap.workers)
    records = BindRecords(store)
    jit_writes = JitWrites(store)
    jit = JitSync(
        store,
        users,
        config.sync,
        upstream_pool,
        clock=utcnow,
        writes=jit_writes,
        remember=records.remember,
    )
    authenticator = _authenticator(
        config, store, jit, directories, workers, records, recorder, metrics
    )
    jobs = _jobs(config, store, users, directories, metrics)
    jobs.recover()  # jobs a dead process left running are marked interrupted now
    return Runtime(
        config=config,
        store=store,
        users=users,
        user_admin=UserAdministration(store, clock=utcnow),
        readiness=Readiness(store, watch),
        directories=directories,
        authenticator=authenticator,
        lookup=ExactLookup(config, store, users, directories, clock=utcnow),
        recorder=recorder,
        upstream_pool=upstream_pool,
        workers=workers,
        records=records,
        jit_writes=jit_writes,
        metrics=metrics,
        passwords=PasswordChanges(config, directories),
        provisioning=Provisioning(store, users, clock=utcnow),
        tokens=BearerTokens(config),
        jobs=jobs,
        scheduler=_scheduler(config, store, jobs),
        administration=Administration(config, store, clock=utcnow),
    )


def _open_store(config: Config, *, migrate: bool) -> Store:
    """The store, its schema checked to be at head and every configured source registered.

    Raises:
        SchemaOutOfDate: the schema is behind and `migrate` is False.
    """
    store = Store.connect(
        config.store.url, pool_size=config.store.pool_size, echo=config.store.echo
    )
    if migrate:
        upgrade(store.engine)
    check_schema(store.engine)
    with store.writing() as session:
        store_users.ensure_sources(
            session, [(s.id, s.kind) for s in config.sources], datetime.now(UTC)
        )
    return store


def _restored_metrics(store: Store) -> Metrics:
    """Fresh metrics, but for each source's last successful bulk sync, read from the store."""
    metrics = Metrics()
    with store.reading() as session:
        metrics.bulk_succeeded_at(job_queries.last_successes(session, JobKind.BULK.value))
    return metrics


def _directories(config: Config, metrics: Metrics, watch: DirectoryWatch) -> dict[str, Directory]:
    """One connector per LDAP and AD source; every upstream call is timed and watched."""

    def observe(source_id: str, kind: str, seconds: float, failed: bool) -> None:
        metrics.upstream(source_id, kind, seconds, failed=failed)
        watch.observe(source_id, failed)

    return {
        source.id: Directory(
            source, failover_cooldown_seconds=source.failover_cooldown_seconds, observe=observe
        )
        for source in config.directory_sources()
    }


def _upstream_pool(config: Config) -> ThreadPoolExecutor:
    """The threads of upstream reads and binds: bounded, so a slow directory cannot take
    every thread."""
    workers = max(4, sum(2 * s.pool_size for s in config.directory_sources()))
    return ThreadPoolExecutor(workers, thread_name_prefix="idgate-upstream")


def _authenticator(
    config: Config,
    store: Store,
    jit: JitSync,
    directories: Mapping[str, Directory],
    workers: Workers,
    records: BindRecords,
    recorder: LastAuthRecorder,
    metrics: Metrics,
) -> Authenticator:
    """The bind path (SPEC §6): routing, the failure limit and just-in-time sync."""
    return Authenticator(
        config,
        store,
        jit,
        directories,
        failure_limiter(config, store),
        recorder,
        offload=workers,
        clock=utcnow,
        records=records,
        report_jit=metrics.jit,
    )


def failure_limiter(config: Config, store: Store) -> FailureLimiter:
    """The bind failure limit (SPEC §6), counted in the store across gateway processes."""
    sync = config.sync
    return FailureLimiter(
        store, sync.failed_auth_limit, sync.failed_auth_window_seconds, clock=utcnow
    )


def _jobs(
    config: Config,
    store: Store,
    users: UserService,
    directories: Mapping[str, Directory],
    metrics: Metrics,
) -> Jobs:
    """The sync jobs (SPEC §5.3-§5.6), counted in `metrics`."""
    return Jobs(
        store,
        works(config, store, users, directories),
        directory_sources=lambda: directory_ids(config),
        clock=utcnow,
        lease_seconds=config.sync.job_lease_seconds,
        details_limit=config.sync.details_limit,
        observe=lambda kind, source, counts: metrics.job(kind.value, source, counts),
        notify=_notify(config),
        releases=lambda read_before: ReleaseHolds(users, store, read_before),
        on_finish=metrics.job_finished,
    )


def _scheduler(config: Config, store: Store, jobs: Jobs) -> Scheduler:
    """The daily refresh and cleanup, at `sync.daily_run_at`, started under `jobs`' owner."""
    return Scheduler(
        store,
        jobs,
        sources=directory_ids(config),
        run_at=config.sync.daily_run_at,
        clock=utcnow,
        owner=jobs.owner,
    )


def works(
    config: Config,
    store: Store,
    users: UserService,
    directories: Mapping[str, Directory],
    *,
    clock: Clock = utcnow,
) -> Callable[[JobKind, str | None], Work]:
    """How each kind of job is done (SPEC §5.3-§5.5), on `clock`."""

    def work(kind: JobKind, source_id: str | None) -> Work:
        if kind is JobKind.CLEANUP:
            return Cleanup(users, store, config.sync, clock=clock)
        source = next((s for s in config.sources if s.id == source_id), None)
        if source is None:
            raise NotFound(f"no source with id {source_id}")
        if not isinstance(source, LdapSource | AdSource):
            raise InvalidInput(
                "source", f"{source_id} is a {source.kind} source: its client provisions it"
            )
        directory = directories[source.id]
        limits = source.disable_limits(config.sync)
        if kind is JobKind.BULK:
            return BulkSync(source, directory, users, store, clock=clock, limits=limits)
        return Refresh(
            source, directory.read_user, users, store, config.sync, clock=clock, limits=limits
        )

    return work


def _notify(config: Config) -> Callable[[str, Mapping[str, Any]], Any] | None:
    """The completion notice of a resync (SPEC §5.6), when one is configured."""
    if config.notifications is None:
        return None
    notifier = Notifier(config.notifications)
    if not notifier.configured:
        return None

    def notify(event: str, summary: Mapping[str, Any]) -> Any:
        return [dataclasses.asdict(d) for d in notifier.send(event, summary)]

    return notify
