"""The bind failure limiter (SPEC §6: refused before the directory), counted in the store so
that it holds across gateway processes; on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gateway.auth.ratelimit import FailureLimiter
from store import failures as failures_queries
from store.db import Store
from store.models import AuditEvent, AuthFailure
from tests.clock import Clock


def rows(store: Store) -> int:
    with store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(AuthFailure)) or 0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_blocks_after_the_limit_within_the_window_and_case_insensitively(store, clock):
    limiter = FailureLimiter(store, 3, 60, clock=clock)
    for _ in range(3):
        assert not limiter.check("Alice").blocked
        limiter.failed("alice")
    assert limiter.check("ALICE").blocked
    assert not limiter.check("bob").blocked


def test_failures_age_out_one_by_one(store, clock):
    limiter = FailureLimiter(store, 2, 60, clock=clock)
    limiter.failed("alice")
    clock.advance(seconds=30)
    limiter.failed("alice")
    assert limiter.check("alice").blocked
    clock.advance(seconds=31)  # the first failure is older than the window now
    assert not limiter.check("alice").blocked


def test_every_limiter_on_one_store_sees_every_failure(store, clock):
    """Two gateway processes are two limiters on one store: the limit is shared."""
    one, two = (FailureLimiter(store, 3, 60, clock=clock) for _ in range(2))
    one.failed("alice")
    two.failed("alice")
    assert not one.check("alice").blocked
    one.failed("alice")
    assert one.check("alice").blocked and two.check("alice").blocked
    tally = two.check("alice")
    assert tally.failures == 3
    two.succeeded(tally)
    assert not one.check("alice").blocked


def test_a_success_without_failures_writes_nothing(store, clock, monkeypatch):
    limiter = FailureLimiter(store, 3, 60, clock=clock)
    writes = []
    monkeypatch.setattr(store, "writing", lambda: writes.append(1))  # any write would fail
    limiter.succeeded(limiter.check("alice"))
    assert writes == []


def test_the_failure_and_its_audit_event_are_one_write(store, clock):
    limiter = FailureLimiter(store, 3, 60, clock=clock)
    event = AuditEvent(at=clock(), actor="ldap", action="test.refused", details={"a": 1})
    limiter.failed("alice", audit=event)
    with store.reading() as session:
        [stored] = session.scalars(select(AuditEvent)).all()
    assert stored.action == "test.refused"
    assert limiter.check("alice").failures == 1


def test_failures_older_than_the_window_are_swept(store, clock):
    limiter = FailureLimiter(store, 5, 60, clock=clock)
    for i in range(4):
        limiter.failed(f"user{i}")
    assert rows(store) == 4
    clock.advance(seconds=61)
    limiter.failed("late")  # the first failure past the sweep interval sweeps the rest
    assert rows(store) == 1


def test_a_store_that_cannot_write_loses_the_count_not_the_bind(store, clock, caplog, monkeypatch):
    def down(*args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(failures_queries, "add_failure", down)
    limiter = FailureLimiter(store, 1, 60, clock=clock)
    limiter.failed("alice")  # logged, not raised
    assert "could not count a failed bind" in caplog.text
    assert "alice" not in caplog.text
    assert not limiter.check("alice").blocked
