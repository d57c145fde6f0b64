"""Engines and units of work.

SQLite is the embedded default: WAL with `synchronous=NORMAL` (about eight times the commit
rate of the default rollback journal, and readers never block the writer), a busy timeout, and
foreign keys on. A write unit of work on SQLite starts with `BEGIN IMMEDIATE`, taking the write
lock up front: a deferred transaction that reads and then writes can fail at once with
SQLITE_BUSY when another writer got there first, without waiting for the busy timeout.

PostgreSQL is the store for several gateway processes; its driver is psycopg 3.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE = "idgate_write"
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
    def plain(self) -> Iterator[Connection]:
        """A Core connection for hot-path reads that need no ORM entities."""
        with self.engine.connect() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
