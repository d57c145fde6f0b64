"""The composition root: the one place that wires store, services and both fronts together.

It is the only module of `gateway` that imports a front (the import contract in pyproject.toml
allows exactly this); everything it builds is passed on explicitly, nothing is global.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn

from gateway.config import Config
from gateway.health import Readiness
from gateway.users import UserService
from scim.app import create_app
from store import users as store_users
from store.db import Store
from store.migrate import check_schema, upgrade

log = logging.getLogger("idgate")


@dataclass(frozen=True)
class Runtime:
    config: Config
    store: Store
    users: UserService
    readiness: Readiness


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
    return Runtime(config, store, UserService(store), Readiness(store))


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
        runtime.store.close()
