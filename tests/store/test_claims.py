"""The JIT window of names with no record yet (`sync_claims`), on SQLite and PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from store import users as queries

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)


@pytest.fixture
def source(store):
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "ldap")], NOW)
    return "corp"


def claim(store, now=NOW, key="login:alice"):
    with store.writing() as session:
        return queries.claim_name_window(
            session, "corp", key, now=now, read_before=now - WINDOW, until=now + timedelta(5)
        )


def test_first_claim_wins_and_a_live_claim_blocks(store, source):
    assert claim(store) is True
    assert claim(store) is False
    with store.reading() as session:
        assert queries.name_claim_live(session, "corp", "login:alice", NOW)
    assert claim(store, key="login:bob") is True  # other names are not held back


def test_finished_read_starts_the_window_and_it_ends(store, source):
    assert claim(store)
    with store.writing() as session:
        queries.finish_name_read(session, "corp", "login:alice", NOW)
    assert claim(store, NOW + timedelta(seconds=299)) is False
    assert claim(store, NOW + timedelta(seconds=301)) is True


def test_released_claim_can_be_taken_at_once(store, source):
    assert claim(store)
    with store.writing() as session:
        queries.release_name_claim(session, "corp", "login:alice")
    assert claim(store) is True


def test_concurrent_claims_of_one_name_have_one_winner(store, source):
    results: list[bool] = []
    barrier = threading.Barrier(12)

    def contender() -> None:
        barrier.wait()
        results.append(claim(store))

    threads = [threading.Thread(target=contender) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 11 + [True]
