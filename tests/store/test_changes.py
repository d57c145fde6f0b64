"""The triggers that log changed bind records (`store.changes`), on SQLite and PostgreSQL."""

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text

from store import changes, failures
from store import users as queries
from tests.gateway.auth.test_bindcache import add_user, new_user

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)


def logged(store) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.scalars(text("SELECT user_id FROM user_changes ORDER BY seq")))


def execute(store, sql: str, **parameters) -> None:
    with store.writing() as session:
        session.execute(text(sql), parameters)


def with_source(store) -> None:
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "local")], NOW)


def test_what_a_bind_reads_is_logged_and_nothing_else(store):
    with_source(store)
    user_id = add_user(store)
    assert logged(store) == [user_id]  # the insert
    execute(store, "UPDATE users SET status = status, dn = dn WHERE id = :id", id=user_id)
    execute(store, "UPDATE users SET display_name = 'A', admin_notes = 'n', version = 2")
    with store.writing() as session:
        queries.claim_sync_window(session, user_id, now=NOW, synced_before=NOW, until=NOW)
        queries.record_authentications(session, {user_id: NOW})
    assert logged(store) == [user_id]  # no value of a bind column changed
    execute(store, "UPDATE users SET password_hash = 'h' WHERE id = :id", id=user_id)
    execute(store, "UPDATE users SET id = 'renamed' WHERE id = :id", id=user_id)
    execute(store, "DELETE FROM users")
    assert logged(store) == [user_id, user_id, user_id, "renamed", "renamed"]


def test_a_failure_of_a_user_is_logged_not_one_of_a_name(store):
    with_source(store)
    user_id = add_user(store)
    with store.writing() as session:
        failures.add_failure(session, user_id, NOW)
        failures.add_failure(session, "corp/login:nobody", NOW)
        failures.clear_failures(session, user_id)  # fewer failures: nothing to drop
    assert logged(store) == [user_id, user_id]


# SQLite has neither: its readers follow the log's order.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgresql_logs_the_transaction_and_notifies(store):
    with_source(store)
    engine = store.engine
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    with psycopg.connect(*args, **kwargs, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        with store.writing() as session:
            connection = session.connection()
            txid = connection.execute(text("SELECT txid_current()")).scalar_one()
            user = new_user()
            session.add(user)
            session.flush()
            user_id = user.id
            assert changes.own_changes(connection) == (txid, [user_id])
        # The channel is the database's: other schemas' tests notify on it too.
        notices = [changes.parse_notice(n.payload) for n in listener.notifies(timeout=1)]
    assert [n for n in notices if n[1] == user_id] == [(txid, user_id)]
    with store.engine.connect() as connection:
        assert changes.own_changes(connection) == (None, [])  # nothing written: no txid


def test_the_log_keeps_its_newest_rows(store):
    with_source(store)
    with store.engine.begin() as connection:
        changes.drop_triggers_v1(connection)
        changes.create_triggers_v1(connection, keep=3)
    user_id = add_user(store)
    # PostgreSQL trims at one insert in TRIM_EVERY: go past the first such.
    count = changes.TRIM_EVERY + 5 if store.dialect == "postgresql" else 10
    with store.writing() as session:
        session.execute(
            text("INSERT INTO auth_failures (key, at) VALUES (:key, :at)"),
            [{"key": user_id, "at": NOW}] * (count - 1),
        )
    with store.engine.connect() as connection:
        seqs = list(connection.scalars(text("SELECT seq FROM user_changes ORDER BY seq")))
    assert seqs[-1] == count
    if store.dialect == "sqlite":
        assert seqs == [count - 2, count - 1, count]
    else:  # trimmed at seq TRIM_EVERY: what came after stays until the next trim
        assert seqs == list(range(changes.TRIM_EVERY - 2, count + 1))
