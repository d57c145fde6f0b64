"""Bind records from memory (`gateway.auth.bindcache`), on SQLite and PostgreSQL: whoever
writes, the next bind sees it (SQLite, and this process's writes everywhere) or within a
second (other processes on PostgreSQL)."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.auth.bindcache import LISTENER_NAME, BindRecords
from gateway.auth.jit import lookup
from gateway.auth.routing import Subject
from gateway.config.sources import LocalSource
from gateway.directory import NameKind
from gateway.engine.types import DisabledBy, Role, Status
from gateway.users.admin import UserAdministration
from gateway.users.names import dn_key, name_key
from gateway.users.service import Actor
from store import changes, failures
from store import users as queries
from store.db import Store
from store.models import User

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime.now(UTC)
SINCE = NOW - timedelta(minutes=5)
SOURCE = LocalSource(id="corp")
SUPER = Actor("ops", Role.SUPER_ADMIN)
DISABLE = (
    "UPDATE users SET status = 'disabled', disabled_by = 'admin', reason = 'admin' WHERE id = :id"
)
#: Other processes' writes on PostgreSQL: the promise is one second.
WITHIN = 1.0


def new_user(name: str | None = None) -> User:
    """A local user of source "corp", active, with a DN."""
    user_id = str(uuid.uuid4())
    name = name or f"u-{user_id[:8]}"
    dn = f"uid={name},ou=corp,dc=example,dc=org"
    return User(
        id=user_id,
        source_id="corp",
        external_id=user_id,
        user_name=name,
        user_name_key=name_key(name),
        dn=dn,
        dn_key=dn_key(dn),
        emails=[],
        groups=[],
        policy={},
        source_status="enabled",
        source_digest="0" * 64,
        status="active",
        status_changed_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


def add_user(store: Store) -> str:
    user = new_user()
    with store.writing() as session:
        session.add(user)
    return user.id


def subject_of(store: Store, user_id: str) -> Subject:
    with store.reading() as session:
        user = queries.get_user(session, user_id)
        assert user is not None
        return Subject(SOURCE, NameKind.LOGIN, user.user_name)


def eventually(done: Callable[[], bool], within: float = WITHIN) -> float:
    """Poll `done` until it holds; how long that took. Fails past `within` seconds."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s")
        time.sleep(0.005)
    return time.monotonic() - started


@pytest.fixture
def records(store: Store) -> Iterator[BindRecords]:
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "local")], NOW)
    cache = BindRecords(store)
    assert cache.wait_ready(5)
    yield cache
    cache.close()


@pytest.fixture
def raw(store_url: str) -> Iterator[Callable[[str, dict[str, object]], None]]:
    """One committed statement on a connection of its own (not the store's, no hooks)."""
    engine = create_engine(store_url)

    def run(sql: str, parameters: dict[str, object]) -> None:
        with engine.begin() as connection:
            connection.execute(text(sql), parameters)

    yield run
    engine.dispose()


def cached_user(records: BindRecords, store: Store) -> tuple[str, Subject]:
    user_id = add_user(store)
    subject = subject_of(store, user_id)
    first = records.lookup(subject, failures_since=SINCE)
    assert first is not None and first.id == user_id
    assert records.cached(subject) == first
    return user_id, subject


def in_other_process(store_url: str, action: str, user_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.gateway.auth.bindcache_worker", store_url, action, user_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_hit_is_jit_lookup_from_memory(store, records):
    _, subject = cached_user(records, store)
    dn = Subject(SOURCE, NameKind.DN, f"UID={subject.value},ou=corp,dc=example,dc=org")
    from_store = lookup(store, subject, failures_since=SINCE)
    assert records.lookup(subject, failures_since=SINCE) == from_store
    assert records.lookup(dn, failures_since=SINCE) == lookup(store, dn, failures_since=SINCE)
    assert records.cached(dn) is not None  # one user, two keys
    assert len(records) == 1
    unknown = Subject(SOURCE, NameKind.LOGIN, "nobody")
    assert records.lookup(unknown, failures_since=SINCE) is None
    assert records.cached(unknown) is None  # an absence is never kept


def test_an_admin_disable_in_this_process_decides_the_next_lookup(store, records):
    user_id, subject = cached_user(records, store)
    UserAdministration(store).disable(SUPER, user_id)
    assert records.cached(subject) is None
    user = records.lookup(subject, failures_since=SINCE)
    assert user is not None
    assert user.state.status is Status.DISABLED and user.state.disabled_by is DisabledBy.ADMIN


def test_a_raw_update_by_another_connection_is_seen(store, records, raw):
    user_id, subject = cached_user(records, store)
    raw(DISABLE, {"id": user_id})
    if store.dialect == "sqlite":
        assert records.cached(subject) is None  # exact: the very next lookup
    else:
        eventually(lambda: records.cached(subject) is None)
    user = records.lookup(subject, failures_since=SINCE)
    assert user is not None and user.state.status is Status.DISABLED


@pytest.mark.parametrize("action", ["disable", "fail"])
def test_a_write_by_another_process_is_seen(store, store_url, records, action):
    user_id, subject = cached_user(records, store)
    in_other_process(store_url, action, user_id)
    if store.dialect == "sqlite":
        assert records.cached(subject) is None
    else:
        eventually(lambda: records.cached(subject) is None)
    user = records.lookup(subject, failures_since=SINCE)
    assert user is not None
    if action == "disable":
        assert user.state.status is Status.DISABLED
    else:
        assert user.recent_failures == 1


def test_a_user_with_recent_failures_is_read_from_the_store_every_time(store, records):
    user_id, subject = cached_user(records, store)
    with store.writing() as session:
        failures.add_failure(session, user_id, NOW)
    assert records.cached(subject) is None
    for expected in (1, 2):
        user = records.lookup(subject, failures_since=SINCE)
        assert user is not None and user.recent_failures == expected
        assert records.cached(subject) is None
        with store.writing() as session:
            failures.add_failure(session, user_id, NOW)
    # Failures out of the window count for nothing: the record is kept again.
    later = NOW + timedelta(seconds=1)
    user = records.lookup(subject, failures_since=later)
    assert user is not None and user.recent_failures == 0
    assert records.cached(subject) == user
    # ...for windows that start that late, not for earlier ones.
    assert records.cached(subject, failures_since=SINCE) is None
    assert records.lookup(subject, failures_since=SINCE).recent_failures == 3  # type: ignore[union-attr]


def test_claims_and_last_auth_writes_keep_the_record(store, records, raw):
    user_id, subject = cached_user(records, store)
    with store.writing() as session:
        assert queries.claim_sync_window(
            session, user_id, now=NOW, synced_before=NOW, until=NOW + timedelta(seconds=30)
        )
    with store.writing() as session:
        queries.record_authentications(session, {user_id: NOW})
    raw("UPDATE users SET sync_claim_until = NULL, last_auth_at = :at", {"at": NOW})
    # A change of another user, after those: once it is seen, theirs would have been too.
    other_id, other = cached_user(records, store)
    raw(DISABLE, {"id": other_id})
    eventually(lambda: records.cached(other) is None)
    assert records.cached(subject) is not None


def test_a_read_that_raced_with_a_change_is_not_kept(store, records, raw, monkeypatch):
    user_id = add_user(store)
    subject = subject_of(store, user_id)
    read = queries.bind_record

    def read_then_change(*args: object) -> object:
        row = read(*args)  # type: ignore[arg-type]
        stamp = records._dropped.get(user_id)
        raw(DISABLE, {"id": user_id})
        # The change is seen (SQLite: by the next check; PostgreSQL: notified).
        other = Subject(SOURCE, NameKind.LOGIN, "nobody")
        eventually(lambda: records.cached(other) is None and records._dropped[user_id] != stamp)
        return row

    monkeypatch.setattr(queries, "bind_record", read_then_change)
    stale = records.lookup(subject, failures_since=SINCE)
    assert stale is not None and stale.state.status is Status.ACTIVE
    assert records.cached(subject) is None


def test_remember_keeps_only_what_this_process_just_wrote(store, records, raw):
    user_id, subject = cached_user(records, store)
    with store.writing() as session:
        queries.mark_synced(session, [user_id], NOW + timedelta(seconds=1), None)
    synced = lookup(store, subject, failures_since=SINCE)
    assert synced is not None
    assert records.cached(subject) is None
    records.remember(synced)
    assert records.cached(subject) == synced
    # Not twice, and not after a change by someone else.
    with store.writing() as session:
        queries.mark_synced(session, [user_id], NOW + timedelta(seconds=2), None)
    raw(DISABLE, {"id": user_id})
    eventually(lambda: records.cached(subject) is None and not records._rememberable)
    records.remember(synced)
    assert records.cached(subject) is None


# PostgreSQL's reader is notified, it reads no log (the log's trimming: tests/store).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_reader_behind_the_trimmed_log_starts_afresh(store, records, raw):
    with store.engine.begin() as connection:
        changes.drop_triggers_v1(connection)
        changes.create_triggers_v1(connection, keep=3)
    _, kept = cached_user(records, store)
    other_id, _ = cached_user(records, store)
    assert len(records) == 2
    for n in range(3):  # within the log: only that user is dropped
        raw("UPDATE users SET reason = :r WHERE id = :id", {"r": f"r{n}", "id": other_id})
    assert records.cached(kept) is not None
    assert len(records) == 1
    other_id, _ = cached_user(records, store)
    for n in range(6):  # past it: all is dropped
        raw("UPDATE users SET reason = :r WHERE id = :id", {"r": f"s{n}", "id": other_id})
    assert records.cached(kept) is None
    assert len(records) == 0
    records.lookup(kept, failures_since=SINCE)
    assert records.cached(kept) is not None  # and it goes on from there


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_lost_listener_means_reading_the_store(store, records, raw):
    _, subject = cached_user(records, store)
    raw(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name",
        {"name": f"{LISTENER_NAME} {os.getpid()}"},
    )
    eventually(lambda: records.cached(subject) is None, within=2)
    assert records.wait_ready(5)  # listening again, and started afresh
    assert len(records) == 0
    assert records.lookup(subject, failures_since=SINCE) is not None
    assert records.cached(subject) is not None


def test_a_change_heard_before_the_own_commit_is_settled_is_never_remembered(
    store, records, monkeypatch
):
    """Another writer's change of the user, heard between this process's commit and its
    commit hook's end: what this process wrote may be older, so it is not kept."""
    user_id, subject = cached_user(records, store)
    settle = records._drop_own

    def heard_first(user_ids, began):
        records._drop(list(user_ids))  # as the follower or the listener would
        settle(user_ids, began)

    monkeypatch.setattr(records, "_drop_own", heard_first)
    with store.writing() as session:
        queries.mark_synced(session, [user_id], NOW + timedelta(seconds=1), None)
    synced = lookup(store, subject, failures_since=SINCE)
    assert synced is not None
    records.remember(synced)
    assert records.cached(subject) is None
