"""The composition root: the one place that wires store, services and both fronts together.

It is the only module of `gateway` that imports a front (the import contract in pyproject.toml
allows exactly this); everything it builds is passed on explicitly, nothing is global.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn

from gateway.auth import Authenticator
from gateway.config import Config
from gateway.directory import Directory
from gateway.failures import FailureLimiter
from gateway.health import Readiness
from gateway.jit import JitSync
from gateway.lastauth import LastAuthRecorder
from gateway.lookup import ExactLookup
from gateway.users import UserService, utcnow
from scim.app import create_app
from store import users as store_users
from store.db import Store
from store.migrate import check_schema, upgrade

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
    closed: bool = field(default=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
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
    directories = {
        source.id: Directory(source, failover_cooldown_seconds=source.failover_cooldown_seconds)
        for source in config.directory_sources()
    }
    # Upstream reads and binds: bounded, so a slow directory cannot take every thread.
    workers = max(4, sum(2 * s.pool_size for s in config.directory_sources()))
    upstream_pool = ThreadPoolExecutor(workers, thread_name_prefix="idgate-upstream")
    jit = JitSync(store, users, config.sync, upstream_pool, clock=utcnow)
    recorder = LastAuthRecorder(store)
    limiter = FailureLimiter(config.sync.failed_auth_limit, config.sync.failed_auth_window_seconds)
    authenticator = Authenticator(
        config, store, jit, directories, upstream_pool, limiter, recorder, clock=utcnow
    )
    return Runtime(
        config=config,
        store=store,
        users=users,
        readiness=Readiness(store),
        directories=directories,
        authenticator=authenticator,
        lookup=ExactLookup(config, users, directories, clock=utcnow),
        recorder=recorder,
        upstream_pool=upstream_pool,
    )


def serve(runtime: Runtime) -> None:
    """Serve the HTTP front until interrupted (SIGINT/SIGTERM end it gracefully)."""
    app = create_app(runtime.readiness.check)
    http = runtime.config.http
    server = uvicorn.Server(
        uvicorn.Config(app, host=http.host, port=http.port, log_config=None, access_log=False)
    )
    log.info("idgate HTTP listening on http://%s:%d", http.host, http.port)
    try:
        server.run()
    finally:
        runtime.close()
