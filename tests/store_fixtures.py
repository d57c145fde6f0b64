"""The `store` fixture: the same tests run on SQLite and, when IDGATE_TEST_DATABASE_URL is set,
on PostgreSQL (SPEC "Real parts"; STYLE habit 14).

SQLite: the schema is migrated once into a template file, copied for each test.
PostgreSQL: one schema per test session (so parallel runs on one server do not meet), migrated
once, its tables emptied before each test.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from store.db import Store, make_engine
from store.migrate import upgrade
from store.models import Base

PG_URL = os.environ.get("IDGATE_TEST_DATABASE_URL")


def _normalise(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    # Fold the WAL back into the main file so a plain copy carries the whole schema.
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("IDGATE_TEST_DATABASE_URL is not set: PostgreSQL store tests not run")
    url = _normalise(PG_URL)
    schema = f"idgate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL at IDGATE_TEST_DATABASE_URL is not reachable: {exc}")
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    engine = make_engine(scoped)
    upgrade(engine)
    engine.dispose()
    yield scoped
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "idgate.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_schema_url")
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    db = Store.connect(store_url)
    yield db
    db.close()
