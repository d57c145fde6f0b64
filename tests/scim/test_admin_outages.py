"""The admin API's answer to a store outage (docs/admin-api.md): a real SQLite lock, a real
full database and a real refused PostgreSQL connection, as SQLAlchemy raises them, become
503 `store_busy` / 503 `store_unavailable` / 507 `store_full`; anything else stays a bug (500)."""

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from scim.admin.errors import outage_error
from tests.ldapproxy.gateway_process import refusing_port


def _raised(url: str, statement: str, **connect_args) -> DBAPIError:
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    pytest.fail(f"{statement!r} did not fail")


def test_a_locked_sqlite_store_is_503_store_busy(tmp_path):
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        error = _raised(f"sqlite:///{path}", "INSERT INTO t VALUES (1)", timeout=0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    answer = outage_error(error)
    assert answer is not None
    assert (answer.status, answer.code) == (503, "store_busy")


def test_a_full_sqlite_store_is_507_store_full(tmp_path):
    path = tmp_path / "s.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x)"))
    error = None
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA max_page_count = 3")  # the file may not grow
        try:
            for _ in range(100):
                connection.execute(text("INSERT INTO t VALUES (randomblob(4000))"))
            connection.commit()
        except DBAPIError as exc:
            error = exc
    engine.dispose()
    assert error is not None
    answer = outage_error(error)
    assert answer is not None
    assert (answer.status, answer.code) == (507, "store_full")


def test_an_unreachable_postgresql_is_503_store_unavailable():
    with refusing_port() as port:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        error = _raised(url, "SELECT 1", connect_timeout=2)
    answer = outage_error(error)
    assert answer is not None
    assert (answer.status, answer.code) == (503, "store_unavailable")


def test_a_broken_constraint_is_not_an_outage(tmp_path):
    path = tmp_path / "s.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x UNIQUE)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    error = _raised(f"sqlite:///{path}", "INSERT INTO t VALUES (1)")
    assert isinstance(error, IntegrityError)
    assert outage_error(error) is None
