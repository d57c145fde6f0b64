"""The composition root: the one place that wires store, services and both fronts together.

It is the only module of `gateway` that imports a front (the import contract in pyproject.toml
allows exactly this); everything it builds is passed on explicitly, nothing is global.
"""

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gateway.auth.binds import Authenticator
from gateway.auth.jit import JitSync
from gateway.auth.lastauth import LastAuthRecorder
from gateway.auth.password_change import PasswordChanges
from gateway.auth.ratelimit import FailureLimiter
from gateway.auth.service_accounts import ServiceAccounts
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
from gateway.users.lookup import ExactLookup
from gateway.users.provisioning import Provisioning
from gateway.users.service import Clock, UserService, utcnow
from gateway.users.tree import DirectoryTree
from ldapproxy.listen import Listeners, listen, tls_of
from ldapproxy.server import Services
from store import jobs as job_queries
from store import users as store_users
from store.db import Store
from store.migrate import check_schema, upgrade

if TYPE_CHECKING:
    from gateway.runtime.demo import DemoDirectory

log = logging.getLogger("idgate")


@dataclass
class Runtime:
    """Everything one gateway process runs on; `close()` releases it in order."""

    config: Config
    store: Store
    users: UserService
    readiness: Readiness
    directories: dict[str, Directory]
    authenticator: Authenticator
    lookup: ExactLookup
    recorder: LastAuthRecorder
    upstream_pool: ThreadPoolExecutor
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
        for directory in self.directories.values():
            directory.close()
        self.store.close()


def build(config: Config, *, migrate: bool = False) -> Runtime:
    """Open the store and build the services.

    Args:
        migrate: bring the schema to head first (the zero-config demo start does this);
            otherwise a schema that is not at head stops the start with the command to run.

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
    users = UserService(store, clock=utcnow)
    metrics = Metrics()
    with store.reading() as session:
        metrics.bulk_succeeded_at(job_queries.last_successes(session, JobKind.BULK.value))
    watch = DirectoryWatch(
        directory_ids(config), clock=utcnow, on_answer=metrics.directory_answered
    )

    def observe(source_id: str, kind: str, seconds: float, failed: bool) -> None:
        metrics.upstream(source_id, kind, seconds, failed=failed)
        watch.observe(source_id, failed)

    directories = {
        source.id: Directory(
            source, failover_cooldown_seconds=source.failover_cooldown_seconds, observe=observe
        )
        for source in config.directory_sources()
    }
    # Upstream reads and binds: bounded, so a slow directory cannot take every thread.
    workers = max(4, sum(2 * s.pool_size for s in config.directory_sources()))
    upstream_pool = ThreadPoolExecutor(workers, thread_name_prefix="idgate-upstream")
    jit = JitSync(store, users, config.sync, upstream_pool, clock=utcnow)
    recorder = LastAuthRecorder(store)
    limiter = failure_limiter(config, store)
    authenticator = Authenticator(
        config,
        store,
        jit,
        directories,
        upstream_pool,
        limiter,
        recorder,
        clock=utcnow,
        report_jit=metrics.jit,
    )
    jobs = Jobs(
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
    jobs.recover()  # jobs a dead process left running are marked interrupted now
    return Runtime(
        config=config,
        store=store,
        users=users,
        readiness=Readiness(store, watch),
        directories=directories,
        authenticator=authenticator,
        lookup=ExactLookup(config, users, directories, clock=utcnow),
        recorder=recorder,
        upstream_pool=upstream_pool,
        metrics=metrics,
        passwords=PasswordChanges(config, directories),
        provisioning=Provisioning(store, users, clock=utcnow),
        tokens=BearerTokens(config),
        jobs=jobs,
        scheduler=Scheduler(
            store,
            jobs,
            sources=directory_ids(config),
            run_at=config.sync.daily_run_at,
            clock=utcnow,
            owner=jobs.owner,
        ),
        administration=Administration(config, store, clock=utcnow),
    )


def failure_limiter(config: Config, store: Store) -> FailureLimiter:
    """The bind failure limit (SPEC §6), counted in the store across gateway processes."""
    sync = config.sync
    return FailureLimiter(
        store, sync.failed_auth_limit, sync.failed_auth_window_seconds, clock=utcnow
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


class ListenError(Exception):
    """A front could not listen where the configuration says: the address is taken, not this
    host's, or needs privileges. The message names the setting."""


def _bind(key: str, host: str, port: int) -> socket.socket:
    """A bound TCP socket for the HTTP front (uvicorn listens on it).

    Bound here rather than by uvicorn, which answers a taken port with `sys.exit`: that ends
    the event loop under the LDAP front's shutdown and prints a traceback for a config error.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"{key}: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ListenError(f"{key}: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `serve` handles signals for both fronts."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    runtime: Runtime,
    *,
    only: str | None = None,
    demo: "DemoDirectory | None" = None,
    started: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve the fronts on one event loop until SIGINT or SIGTERM (SPEC §1).

    Twisted runs on asyncio's loop (its asyncio reactor), so the LDAP front, uvicorn's HTTP
    front and the demo directory share one loop; blocking work goes to thread pools.

    Args:
        only: "ldap" or "http" to run one front; None runs both.
        demo: the built-in demo directory to start first (no config given).
        started: told the listeners' URLs once everything listens.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    # Installed before anything imports twisted.internet.reactor (nothing at module level does).
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    try:
        loop.run_until_complete(_serve(runtime, reactor, only, demo, started))
    finally:
        runtime.close()
        loop.close()


async def _serve(
    runtime: Runtime,
    reactor: Any,
    only: str | None,
    demo: "DemoDirectory | None",
    started: Callable[[list[str]], None] | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reactor.startRunning(installSignalHandlers=False)
    runtime.start_background()
    urls: list[str] = []
    if demo is not None:
        demo.listen(reactor)
    pool = ThreadPool(minthreads=0, maxthreads=runtime.config.ldap.workers, name="idgate-ldap")
    listeners: Listeners | None = None
    http: QuietServer | None = None
    http_task: asyncio.Task[None] | None = None
    try:
        if only in (None, "ldap"):
            pool.start()
            services = ldap_services(runtime, reactor, pool)
            try:
                listeners = listen(reactor, services, runtime.config.ldap)
            except CannotListenError as exc:
                ldap_config = runtime.config.ldap
                tls = (
                    ldap_config.ldaps_listen is not None
                    and exc.port == ldap_config.ldaps_listen.port
                )
                key = "ldap.ldaps_listen" if tls else "ldap.listen"
                reason = getattr(exc.socketError, "strerror", None) or exc.socketError
                raise ListenError(
                    f"{key}: cannot listen on {exc.interface}:{exc.port}: {reason}"
                ) from exc
            for scheme, host, port in listeners.addresses():
                urls.append(f"{scheme}://{host}:{port}")
                log.info("idgate LDAP listening on %s://%s:%d", scheme, host, port)
        if only in (None, "http"):
            http_config = runtime.config.http
            app = http_app(runtime)
            http = QuietServer(
                uvicorn.Config(
                    app,
                    host=http_config.host,
                    port=http_config.port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            sock = _bind("http.listen", http_config.host, http_config.port)
            http_task = asyncio.create_task(http.serve(sockets=[sock]))
            while not http.started and not http_task.done():
                await asyncio.sleep(0.01)
            if http_task.done():
                http_task.result()  # the HTTP listener could not start: raise why
            for server in http.servers:
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    urls.append(f"http://{host}:{port}")
                    log.info("idgate HTTP listening on http://%s:%d", host, port)
        if started is not None:
            started(urls)
        waiter = asyncio.create_task(stop.wait())
        watched: set[asyncio.Task[Any]] = {waiter} | ({http_task} if http_task else set())
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        log.info("idgate shutting down")
    finally:
        if listeners is not None:
            await listeners.close()
        if http is not None and http_task is not None:
            http.should_exit = True
            await asyncio.gather(http_task, return_exceptions=True)
        if pool.started:
            await loop.run_in_executor(None, pool.stop)
        if demo is not None:
            await demo.close()


def http_app(runtime: Runtime) -> Starlette:
    """The HTTP front: health, metrics, the SCIM endpoints and the admin API on this
    runtime's services."""
    # Imported here: the HTTP front pulls in scim2-server and scim2-models (about 1.8 s of
    # CPU), which `--only ldap`, the CLI's jobs and every `build()` without HTTP never need.
    from scim.admin import AdminServices
    from scim.app import ScimServices, create_app

    return create_app(
        runtime.readiness.check,
        metrics=runtime.metrics.registry,
        scim=ScimServices(
            runtime.config, runtime.provisioning, runtime.tokens, record=runtime.metrics.scim
        ),
        admin=AdminServices(
            users=runtime.users,
            lookup=runtime.lookup,
            jobs=runtime.jobs,
            administration=runtime.administration,
            tokens=runtime.tokens,
            record=runtime.metrics.scim,
        ),
    )


def ldap_services(runtime: Runtime, reactor: Any, pool: ThreadPool) -> Services:
    """The LDAP front's view of the gateway's services."""
    config = runtime.config

    def run(call: Callable[..., Any], /, *args: Any) -> Any:
        return deferToThreadPool(reactor, pool, call, *args)

    return Services(
        config=config,
        authenticate=runtime.authenticator.authenticate,
        route=runtime.authenticator.route,
        accounts=ServiceAccounts(
            config.ldap.service_accounts, failure_limiter(config, runtime.store), clock=utcnow
        ),
        tree=DirectoryTree(config, runtime.store),
        include=runtime.lookup.include,
        change_password=runtime.passwords.change,
        run=run,
        recorder=runtime.metrics,
        tls_context=tls_of(config.ldap),
    )
