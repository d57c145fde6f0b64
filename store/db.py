"""Engines and units of work.

SQLite is the embedded default: WAL with `synchronous=NORMAL` (about eight times the commit
rate of the default rollback journal, and readers never block the writer), a busy timeout, and
foreign keys on. A write unit of work on SQLite starts with `BEGIN IMMEDIATE`, taking the write
lock up front: a deferred transaction that reads and then writes can fail at once with
SQLITE_BUSY when another writer got there first, without waiting for the busy timeout.

PostgreSQL is the store for several gateway processes; its driver is psycopg 3. Its pool
pings a connection before lending it (`pool_pre_ping`): after a server restart every pooled
connection is dead, and the first unit of work on each would fail otherwise.

Writing units of work run the store's commit hooks (`Store.add_commit_hook`): in the
transaction just before it commits, and again once it has committed (the in-process bind
cache drops what this process just changed, `gateway.auth.bindcache`).

`outage_of(exc)` tells the fronts which driver errors are an outage of the store (busy, down,
full) rather than a bug, so that a client gets "try again later" and not an internal error.
"""

import enum
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE = "idgate_write"
# Keys of `Session.info` for the commit hooks.
_CONNECTION = "idgate_connection"
_AFTER_COMMIT = "idgate_after_commit"

#: Called in a writing transaction, flushed, just before it commits, with its connection;
#: returns what to run once the commit has succeeded, or None.
CommitHook = Callable[[Connection], Callable[[], None] | None]
#: The SQL name of Python's str.casefold on SQLite connections (store.search folds with it).
FOLD_FUNCTION = "idgate_fold"


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create the engine for a store URL (`sqlite:///...` or `postgresql+psycopg://...`)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            # Sized like PostgreSQL's: with the default 5, binds, upstream workers and the
            # last_auth writer kept opening and closing overflow connections (4 PRAGMAs each).
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # SQLite's lower() folds ASCII only; filters fold like the stored keys (name_key).
        dbapi_connection.create_function(FOLD_FUNCTION, 1, _casefold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Outage(enum.Enum):
    """A store failure that is not the caller's fault nor a bug: it passes, a retry may work."""

    #: Another writer holds the lock past the busy timeout, the pool is exhausted, a deadlock.
    BUSY = "busy"
    #: The server cannot be reached, is shutting down or starting up; the connection was cut.
    UNAVAILABLE = "unavailable"
    #: The disk (or the database's quota) is full: nothing more can be written.
    FULL = "full"


# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_OUTAGES = {5: Outage.BUSY, 6: Outage.BUSY, 13: Outage.FULL, 14: Outage.UNAVAILABLE}
_SQLITE_IOERR = 10
# PostgreSQL SQLSTATEs (Appendix A): 53100 disk_full; class 53 otherwise insufficient
# resources; 40001/40P01 serialization failure and deadlock; class 08 connection exceptions;
# 57P01-57P03 admin/crash shutdown and "cannot connect now" (starting up).
_PG_OUTAGES = {"53100": Outage.FULL, "40001": Outage.BUSY, "40P01": Outage.BUSY}
_PG_CLASSES = {"53": Outage.BUSY, "08": Outage.UNAVAILABLE, "57": Outage.UNAVAILABLE}


def outage_of(error: BaseException | None) -> Outage | None:
    """The store outage `error` reports, or None when it is something else (a bug, a broken
    constraint): what the fronts answer with "unavailable, try again", not "internal error"."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return Outage.BUSY
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return Outage.UNAVAILABLE
    original = error.orig
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_IOERR:  # a write that failed on the device (ENOSPC among them)
            return Outage.FULL if "full" in str(original) else Outage.UNAVAILABLE
        return _SQLITE_OUTAGES.get(code)
    state = getattr(original, "sqlstate", None)
    if isinstance(state, str):
        return _PG_OUTAGES.get(state) or _PG_CLASSES.get(state[:2])
    # psycopg raises an OperationalError without SQLSTATE when it cannot connect at all.
    return Outage.UNAVAILABLE if isinstance(error, sa_exc.OperationalError) else None


def _casefold(value: object) -> object:
    """str.casefold as a SQL function: NULL stays NULL, a non-text value is left as it is."""
    return value.casefold() if isinstance(value, str) else value


class Store:
    """The database behind the gateway: an engine and its units of work.

    `writing()` is a transaction that commits when the block ends and rolls back when it
    raises; `reading()` is a session for queries only.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._commit_hooks: list[CommitHook] = []
        event.listen(self._write, "after_begin", _keep_connection)
        event.listen(self._write, "before_commit", self._before_commit)
        event.listen(self._write, "after_commit", _after_commit)
        event.listen(self._write, "after_rollback", _forget_after_commit)

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10, echo: bool = False) -> "Store":
        return cls(make_engine(url, pool_size=pool_size, echo=echo))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def core_connection(self) -> Iterator[Connection]:
        """A Core connection for hot-path reads that need no ORM entities."""
        with self.engine.connect() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def add_commit_hook(self, hook: CommitHook) -> Callable[[], None]:
        """Run `hook` in every writing transaction that used a connection, before it commits;
        what it returns runs after the commit succeeded (never after a rollback). An
        exception of `hook` fails the commit.

        Returns:
            A call that removes the hook.
        """
        self._commit_hooks.append(hook)
        return lambda: self._commit_hooks.remove(hook)

    def _before_commit(self, session: Session) -> None:
        connection = session.info.get(_CONNECTION)
        if not self._commit_hooks or connection is None:
            return
        # SQLAlchemy flushes after this event: the hooks must see the ORM's pending writes.
        session.flush()
        afters = [after for hook in list(self._commit_hooks) if (after := hook(connection))]
        if afters:
            session.info[_AFTER_COMMIT] = afters


def _keep_connection(session: Session, _transaction: Any, connection: Connection) -> None:
    session.info[_CONNECTION] = connection


def _after_commit(session: Session) -> None:
    session.info.pop(_CONNECTION, None)
    for after in session.info.pop(_AFTER_COMMIT, ()):
        try:
            after()
        except Exception:  # the commit stands; a hook's failure must not turn it into an error
            log.exception("store: a commit hook failed after the commit")


def _forget_after_commit(session: Session) -> None:
    session.info.pop(_CONNECTION, None)
    session.info.pop(_AFTER_COMMIT, None)
