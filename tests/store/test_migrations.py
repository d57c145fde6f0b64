"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from store.db import Store
from store.errors import SchemaOutOfDate
from store.migrate import check_schema, current_revision, head_revision, upgrade
from store.models import Base


def test_migrated_schema_matches_the_models(store):
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_schema_at_head_passes_the_start_up_check(store):
    assert current_revision(store.engine) == head_revision()
    check_schema(store.engine)


def test_empty_database_is_refused_with_the_command_that_fixes_it(tmp_path):
    store = Store.connect(f"sqlite:///{tmp_path}/empty.db")
    try:
        try:
            check_schema(store.engine)
        except SchemaOutOfDate as exc:
            assert exc.current is None
            assert "idgate db upgrade" in str(exc)
        else:
            raise AssertionError("an empty database passed the schema check")
        upgrade(store.engine)
        check_schema(store.engine)
        upgrade(store.engine)  # a second upgrade is a no-op
    finally:
        store.close()


def test_sqlite_runs_wal_with_a_busy_timeout_and_foreign_keys(tmp_path):
    store = Store.connect(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        with store.engine.connect() as connection:
            pragma = lambda name: connection.execute(text(f"PRAGMA {name}")).scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("busy_timeout") == 10_000
            assert pragma("foreign_keys") == 1
    finally:
        store.close()
