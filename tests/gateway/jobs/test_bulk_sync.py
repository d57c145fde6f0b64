"""Bulk sync jobs (SPEC §5.3) end to end: `gateway.runtime.main.build` against real slapd servers
loaded offline with 1,500 users, on SQLite and PostgreSQL.

Seed users under ou=people take part in every run: alice, dave and frank are added; bob
(pwdAccountLockedTime) and carol (shadowExpire 1) are "not synchronized" with their reason.
The 1,500-user directory of this module (four pages of 500, more users than the 400 a
details list keeps) is shared by the tests that only read it; tests that change a directory
use their own (`slapd_factory`).
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.users import BenchUser, generate, load
from gateway.engine.phones import PhoneKind
from gateway.engine.plan import SourceUser
from gateway.engine.types import DisabledBy, Reason, SourceStatus, Status, Trigger
from gateway.errors import Conflict
from gateway.jobs.service import (
    INTERRUPTED_REASON,
    SHUTDOWN_REASON,
    JobKind,
    JobRunning,
    JobState,
    JobView,
)
from gateway.runtime.main import Runtime
from gateway.users.records import view_of
from gateway.users.service import LIMIT_REACHED, NAME_CONFLICT, utcnow
from store import jobs as job_queries
from store.job_columns import COUNTERS
from tests.gateway.bulkfixture import (
    SEED_ADDED,
    SEED_NOT_SYNCHRONIZED,
    SOURCE,
    SUPER,
    Clocked,
    count_users,
    counts_of,
    detail_count,
    details_of,
    job_row,
    job_rows,
    load_people,
    loaded_slapd,
    people,
    user_rows,
    wait_job,
    wait_until,
)
from tests.gateway.realgw import gateway_config, slapd_source
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd

ROOT = Path(__file__).resolve().parents[3]
BENCH = 1500
#: The user limit of the limit test: the 503 enabled users past it, with bob and carol, are
#: more than a details list keeps (400).
LIMIT = 1000
#: What a run over the module's directory reads: the bench users and the five seed users
#: of ou=people (erin is under ou=contractors, out of scope).
READ = BENCH + len(SEED_ADDED) + len(SEED_NOT_SYNCHRONIZED)
ENABLED = BENCH + len(SEED_ADDED)


def expected(**counts: int) -> dict[str, int]:
    return {name: counts.get(name, 0) for name in COUNTERS}


@pytest.fixture(scope="module")
def bench_directory() -> Iterator[tuple[Slapd, list[BenchUser]]]:
    """The seed plus the bench users; read, never changed, by the tests below."""
    with loaded_slapd(BENCH) as loaded:
        yield loaded


def bulk(runtime: Runtime, timeout: float = 120) -> JobView:
    started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    assert started.state is JobState.RUNNING
    return wait_job(runtime.jobs, started.id, timeout)


def worker_config(store_url: str, server: Slapd, **sync: Any) -> dict[str, Any]:
    """The raw config a worker subprocess parses (what `gateway_config` parses here)."""
    return {
        "store": {"url": store_url, "pool_size": 4},
        "sync": {"jit_interval_seconds": 0, **sync},
        "sources": [slapd_source([server.url], page_size=50)],
    }


# -- counts and details lists ------------------------------------------------------------------


def test_bulk_runs_count_add_unchanged_update_and_disable_exactly(
    slapd_factory, store_url, gateways
):
    server: Slapd = slapd_factory()
    bench = generate(BENCH, server.people_dn)
    load(server, bench)
    runtime = gateways(gateway_config(store_url, slapd_source([server.url])))
    store = runtime.store

    # First run: everybody enabled is added; bob and carol are listed with their reason.
    first = bulk(runtime)
    assert (first.state, first.error) == (JobState.SUCCEEDED, None)
    assert first.ended_at is not None and first.ended_at >= first.started_at
    assert counts_of(first) == expected(
        read=READ, added=ENABLED, not_synchronized=len(SEED_NOT_SYNCHRONIZED)
    )
    rows = user_rows(store)
    assert set(rows) == {u.uid for u in bench} | set(SEED_ADDED)
    assert dict(details_of(store, first.id, "not_synchronized")) == SEED_NOT_SYNCHRONIZED
    added = details_of(store, first.id, "added")
    assert len(added) == 400  # sync.details_limit: 400 of the 1,503 are listed
    assert {reason for _, reason in added} == {"new in the source"}
    assert {name for name, _ in added} <= set(rows)
    assert runtime.jobs.details(SUPER, first.id, category="added") == runtime.jobs.details(
        SUPER, first.id, category="added", limit=1000
    )
    progress = runtime.metrics.registry.get_sample_value
    labels = {"kind": "bulk", "source": SOURCE}
    assert progress("idgate_job_users_total", {**labels, "category": "added"}) == ENABLED
    assert progress("idgate_job_users_total", {**labels, "category": "read"}) == READ

    # Second run, nothing changed upstream: nothing written, everybody unchanged.
    second = bulk(runtime)
    assert second.state is JobState.SUCCEEDED
    assert counts_of(second) == expected(
        read=READ, unchanged=ENABLED, not_synchronized=len(SEED_NOT_SYNCHRONIZED)
    )
    assert detail_count(store, first.id) == 0  # a new run replaces the previous run's lists
    assert len(details_of(store, second.id, "unchanged")) == 400
    assert dict(details_of(store, second.id, "not_synchronized")) == SEED_NOT_SYNCHRONIZED
    for category in ("added", "updated", "disabled"):
        assert details_of(store, second.id, category) == []
    assert {name: user.version for name, user in user_rows(store).items()} == {
        name: user.version for name, user in rows.items()
    }  # no record changed

    # Upstream: 10 changed, 5 locked, 5 moved out of scope, 5 deleted, spread over the pages.
    picked = random.Random(6).sample(bench, 25)
    changed, locked, moved, deleted = picked[:10], picked[10:15], picked[15:20], picked[20:]
    for n, user in enumerate(changed):
        server.modify(
            user.dn,
            {
                "mail": f"{user.uid}@changed.example.org",
                "mobile": f"+1 202 555 {n:04d}",
                "cn": f"Changed {user.uid}",
            },
        )
    for user in locked:
        server.modify(user.dn, {"pwdAccountLockedTime": "000001010000Z"})
    with server.admin_connection() as conn:  # the seed has ou=contractors, outside the root
        assert conn.search(server.contractors_dn, "(ou=contractors)", "BASE")
    for user in moved:
        server.rename(user.dn, f"uid={user.uid}", new_superior=server.contractors_dn)
    for user in deleted:
        server.delete(user.dn)

    third = bulk(runtime)
    assert third.state is JobState.SUCCEEDED
    assert counts_of(third) == expected(
        read=READ - len(moved) - len(deleted),
        updated=len(changed),
        disabled=len(locked) + len(moved) + len(deleted),
        unchanged=ENABLED - 25,
        not_synchronized=len(SEED_NOT_SYNCHRONIZED),
    )
    assert detail_count(store, second.id) == 0
    updated = details_of(store, third.id, "updated")
    assert sorted(name for name, _ in updated) == sorted(u.uid for u in changed)
    assert all(reason.startswith("source data changed") for _, reason in updated)
    disabled = details_of(store, third.id, "disabled")
    assert len(disabled) == 15
    assert dict(disabled) == {
        **{u.uid: Reason.SOURCE_DISABLED.value for u in locked},
        **{u.uid: Reason.MISSING.value for u in moved + deleted},
    }
    assert details_of(store, third.id, "added") == []
    assert len(details_of(store, third.id, "unchanged")) == 400
    assert {name for name, _ in details_of(store, third.id, "unchanged")}.isdisjoint(
        u.uid for u in picked
    )

    after = user_rows(store)
    assert len(after) == ENABLED  # disabled records stay; nothing was added
    for n, user in enumerate(changed):
        view = view_of(after[user.uid])
        assert view.state.status is Status.ACTIVE
        assert [e["value"] for e in view.emails] == [f"{user.uid}@changed.example.org"]
        assert [p.number for p in view.sms_phones] == [f"+1 202 555 {n:04d}"]
        assert view.display_name == f"Changed {user.uid}"
    for users, reason in ((locked, Reason.SOURCE_DISABLED), (moved + deleted, Reason.MISSING)):
        for user in users:
            state = view_of(after[user.uid]).state
            assert (state.status, state.disabled_by, state.reason) == (
                Status.DISABLED,
                DisabledBy.SOURCE,
                reason,
            ), user.uid
    active = [name for name, user in after.items() if user.status == Status.ACTIVE.value]
    assert len(active) == ENABLED - 15


def test_user_limit_leaves_the_rest_not_synchronized_limit_reached(
    bench_directory, store_url, gateways
):
    server, bench = bench_directory
    runtime = gateways(gateway_config(store_url, slapd_source([server.url], user_limit=LIMIT)))

    job = bulk(runtime)

    # 1,503 enabled users, 1,000 fit: 503 are "limit reached", beside bob and carol.
    over = ENABLED - LIMIT
    assert job.state is JobState.SUCCEEDED
    assert counts_of(job) == expected(
        read=READ, added=LIMIT, not_synchronized=over + len(SEED_NOT_SYNCHRONIZED)
    )
    rows = user_rows(runtime.store)
    assert len(rows) == LIMIT
    left_out = ({u.uid for u in bench} | set(SEED_ADDED)) - set(rows)
    assert len(left_out) == over
    listed = details_of(runtime.store, job.id, "not_synchronized")
    assert len(listed) == 400  # capped: 505 not synchronized, 400 listed
    limited = [name for name, reason in listed if reason == LIMIT_REACHED]
    others = {name: reason for name, reason in listed if reason != LIMIT_REACHED}
    assert others.items() <= SEED_NOT_SYNCHRONIZED.items()
    assert len(limited) == 400 - len(others)
    assert set(limited) <= left_out
    assert len(set(limited)) == len(limited)


class PageGate:
    """Holds a bulk job after its first page committed until released, so a test acts on it
    mid-run however fast the machine is (a quiet machine reads the bench users in well under a
    second)."""

    def __init__(self, runtime: Runtime) -> None:
        self.written = threading.Event()
        self.release = threading.Event()
        page_in_unit = threading.local()
        apply_batch = runtime.users.apply_batch
        writing = runtime.store.writing

        def gated_apply(*args: Any, **kwargs: Any) -> Any:
            results = apply_batch(*args, **kwargs)
            page_in_unit.pending = kwargs.get("seen_in_job") is not None
            return results

        @contextmanager
        def gated_writing() -> Iterator[Any]:
            page_in_unit.pending = False
            with writing() as session:
                yield session
            # The job's page and its counts committed together: hold the job here.
            if page_in_unit.pending:
                page_in_unit.pending = False
                self.written.set()
                self.release.wait(60)

        runtime.users.apply_batch = gated_apply  # type: ignore[method-assign]
        runtime.store.writing = gated_writing  # type: ignore[method-assign]

    def wait_written(self) -> None:
        assert self.written.wait(60), "the job wrote no page"


def test_a_stopped_run_keeps_what_it_wrote_and_skips_the_missing_pass(
    bench_directory, store_url, gateways
):
    server, _ = bench_directory
    runtime = gateways(
        gateway_config(store_url, slapd_source([server.url], page_size=100), details_limit=7)
    )
    # Records the directory does not have: a missing pass would disable them.
    ghosts = [
        SourceUser(external_id=f"ghost-{n}", user_name=f"ghost-{n}", status=SourceStatus.ENABLED)
        for n in range(3)
    ]
    with runtime.store.writing() as session:
        runtime.users.apply_batch(session, SOURCE, ghosts, Trigger.BULK)
    gate = PageGate(runtime)
    started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    asked: list[JobView] = []

    def stop_once_reading() -> None:
        # The API's counts move while the job runs (SPEC §5.3 progress).
        gate.wait_written()
        wait_until(lambda: runtime.jobs.get(SUPER, started.id).counts.read, 60, "the first page")
        asked.append(runtime.jobs.stop(SUPER, started.id))
        gate.release.set()

    stopper = threading.Thread(target=stop_once_reading)
    stopper.start()
    stopper.join(90)
    stopped = wait_job(runtime.jobs, started.id)

    assert asked and asked[0].state is JobState.STOPPING
    assert stopped.state is JobState.STOPPED
    assert stopped.error is None
    counts = stopped.counts
    assert 0 < counts.read < READ, "the run was not stopped mid-way"
    assert counts.read % 100 == 0  # it stopped between pages
    assert counts.read == counts.added + counts.not_synchronized
    assert (counts.updated, counts.unchanged, counts.disabled) == (0, 0, 0)
    rows = user_rows(runtime.store)
    assert len(rows) - len(ghosts) == counts.added  # what it wrote stays, and is counted
    assert sum(1 for user in rows.values() if user.seen_in_job == started.id) == counts.added
    for ghost in ghosts:  # no missing pass after an incomplete read
        user = rows[ghost.user_name]
        assert (user.status, user.source_status) == (Status.ACTIVE.value, "enabled")
    assert not [u for u in rows.values() if u.reason == Reason.MISSING.value]
    with runtime.store.reading() as session:  # ...which would have disabled the ghosts
        unseen = job_queries.unseen_users(session, SOURCE, started.id, stopped.started_at, "", 10)
    assert {user_name for _, _, user_name, _ in unseen} == {g.user_name for g in ghosts}
    assert len(details_of(runtime.store, started.id, "added")) == min(7, counts.added)
    with pytest.raises(Conflict, match="ended already"):
        runtime.jobs.stop(SUPER, started.id)


def test_a_stop_asked_through_another_process_is_seen_at_the_next_page(
    bench_directory, store_url, gateways
):
    server, _ = bench_directory
    runtime = gateways(gateway_config(store_url, slapd_source([server.url], page_size=100)))
    # Another gateway process on the same store: its Jobs does not run the job.
    other = Clocked(runtime, utcnow, owner="other-gateway")
    gate = PageGate(runtime)
    try:
        started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
        gate.wait_written()
        wait_until(lambda: job_row(runtime.store, started.id).read > 0, 60, "the first page")
        assert other.jobs.stop(SUPER, started.id).state is JobState.STOPPING
        gate.release.set()
        stopped = wait_job(runtime.jobs, started.id)
    finally:
        other.close()
    assert stopped.state is JobState.STOPPED
    assert 0 < stopped.counts.read < READ
    assert count_users(runtime.store) == stopped.counts.added


def test_a_job_running_at_shutdown_ends_interrupted_and_frees_the_source(
    bench_directory, store_url, gateways
):
    server, _ = bench_directory
    config = gateway_config(store_url, slapd_source([server.url], page_size=100))
    runtime = gateways(config)
    gate = PageGate(runtime)
    started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    gate.wait_written()
    wait_until(lambda: job_row(runtime.store, started.id).read > 0, 60, "the first page")

    gate.release.set()
    gateways.close(runtime)

    successor = gateways(config)
    job = job_row(successor.store, started.id)
    assert (job.state, job.error) == (JobState.INTERRUPTED.value, SHUTDOWN_REASON)
    assert job.ended_at is not None and 0 < job.read < READ
    assert job.added == count_users(successor.store)
    # The lease went with it: another gateway may run the source's job at once.
    successor_gate = PageGate(successor)
    again = successor.jobs.start(SUPER, JobKind.BULK, SOURCE)
    successor_gate.wait_written()
    successor.jobs.stop(SUPER, again.id)
    successor_gate.release.set()
    assert wait_job(successor.jobs, again.id).state is JobState.STOPPED


def test_a_second_start_in_the_same_process_is_refused(bench_directory, store_url, gateways):
    """One job at a time per source, also within one process (SPEC §5.3): a bulk job and
    the source's refresh share the source's lease, whoever holds it."""
    server, _ = bench_directory
    runtime = gateways(gateway_config(store_url, slapd_source([server.url], page_size=100)))
    gate = PageGate(runtime)
    first = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    try:
        with pytest.raises(JobRunning) as again:
            runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
        assert again.value.job_id == first.id
        with pytest.raises(JobRunning):
            runtime.jobs.start(SUPER, JobKind.REFRESH, SOURCE)
    finally:
        for job in job_rows(runtime.store):
            if job.state in ("running", "stopping"):
                runtime.jobs.stop(SUPER, job.id)
        gate.release.set()
        for job in job_rows(runtime.store):
            wait_job(runtime.jobs, job.id)
    assert [job.id for job in job_rows(runtime.store)] == [first.id]


def test_a_page_with_two_entries_of_one_name_keeps_the_user_limit(
    slapd_factory, store_url, gateways
):
    """Two entries of one page claim one userName: the page is applied again user by user
    (UserService.apply_batch); the users the first, rolled-back attempt planned to add must
    not use up the source's user limit."""
    server: Slapd = slapd_factory(seed_users=False)
    for n in range(10):
        server.add_user(f"u{n}")
    server.add_user("twin")
    with server.admin_connection() as conn:  # a second entry, another RDN, the same uid
        conn.add(
            f"cn=twin-2,{server.people_dn}",
            ["inetOrgPerson"],
            {"cn": "twin-2", "sn": "t", "uid": "twin"},
        )
        assert conn.result["result"] == 0, conn.result
    runtime = gateways(gateway_config(store_url, slapd_source([server.url], user_limit=20)))

    job = bulk(runtime)

    assert job.state is JobState.SUCCEEDED
    assert counts_of(job) == expected(read=12, added=11, not_synchronized=1)
    assert sorted(user_rows(runtime.store)) == sorted([f"u{n}" for n in range(10)] + ["twin"])
    assert details_of(runtime.store, job.id, "not_synchronized") == [("twin", NAME_CONFLICT)]


def snapshot(runtime: Runtime) -> dict[str, tuple[Any, ...]]:
    rows = user_rows(runtime.store)
    return {name: (u.status, u.reason, u.version, u.last_sync_at) for name, u in rows.items()}


def test_a_directory_that_does_not_answer_fails_the_job_and_changes_nothing(
    slapd_factory, store_url, gateways
):
    server: Slapd = slapd_factory()
    runtime = gateways(gateway_config(store_url, slapd_source([server.url])))
    assert bulk(runtime).counts.added == len(SEED_ADDED)
    before = {
        name: (u.status, u.version, u.last_sync_at) for name, u in user_rows(runtime.store).items()
    }
    server.stop()

    failed = bulk(runtime)

    assert failed.state is JobState.FAILED
    assert failed.error and SOURCE in failed.error
    assert counts_of(failed) == expected()
    after = {
        name: (u.status, u.version, u.last_sync_at) for name, u in user_rows(runtime.store).items()
    }
    assert after == before  # no missing pass after a read that failed
    server.start()
    again = bulk(runtime)
    assert (again.state, again.counts.unchanged) == (JobState.SUCCEEDED, len(SEED_ADDED))


# -- across processes --------------------------------------------------------------------------


def test_two_processes_starting_one_job_at_once_run_it_once(slapd, store_url, gateways, tmp_path):
    cfg = worker_config(store_url, slapd)
    runtime = gateways(gateway_config(store_url, cfg["sources"][0]))  # schema and source row
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    args = ["race", json.dumps(cfg), str(barrier), "2"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.job_worker", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    answers = []
    for worker in workers:
        out, err = worker.communicate(timeout=90)
        assert worker.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))

    started = [a for a in answers if "started" in a]
    refused = [a for a in answers if "running" in a]
    assert len(started) == 1 and len(refused) == 1, answers
    assert started[0]["state"] == JobState.SUCCEEDED.value
    assert refused[0]["running"] == started[0]["started"]
    jobs = job_rows(runtime.store)
    assert [(job.id, job.state) for job in jobs] == [(started[0]["started"], "succeeded")]


def test_a_killed_process_leaves_a_consistent_store_and_an_interrupted_job(
    slapd_factory, store_url, gateways
):
    server: Slapd = slapd_factory(seed_users=False)
    persons = people(1000, server.people_dn)
    load_people(server, persons)
    cfg = worker_config(store_url, server, job_lease_seconds=3)
    runtime = gateways(gateway_config(store_url, cfg["sources"][0], job_lease_seconds=3))
    store = runtime.store
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.job_worker", "run", json.dumps(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def reading() -> list[Any]:
            if worker.poll() is not None:
                raise AssertionError(f"the worker ended early: {worker.communicate()}")
            return [job for job in job_rows(store) if job.read > 0]

        jobs = wait_until(reading, 60, "the worker's first page")
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
    finally:
        worker.kill()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, err
    assert json.loads(out.strip().splitlines()[0]) == {"job": jobs[0].id}

    job = job_row(store, jobs[0].id)
    assert job.state == "running"  # nobody could say otherwise yet
    assert 0 < job.read < len(persons), "the worker was not killed mid-run"
    assert job.lease_expires_at is not None and job.lease_expires_at > killed_at
    # Every page committed with its counts: they describe the store exactly.
    rows = user_rows(store)
    assert len(rows) == job.added
    assert job.read == job.added + job.not_synchronized
    by_uid = {p.uid: p for p in persons}
    for name, user in rows.items():  # no half-written record
        person = by_uid[name]
        assert [e["value"] for e in user.emails] == [person.mail]
        phones = {(p.kind, p.position, p.number) for p in user.phones}
        assert phones == {
            (PhoneKind.SMS.value, 0, person.mobile),
            (PhoneKind.VOICE.value, 0, person.phone),
        }, name

    # Until its lease runs out the job is the dead process's: nobody else may start one.
    at_kill = Clocked(runtime, lambda: killed_at, owner="at-kill-time")
    try:
        with pytest.raises(JobRunning) as refused:
            at_kill.jobs.start(SUPER, JobKind.BULK, SOURCE)
        assert refused.value.job_id == job.id
        assert at_kill.jobs.recover() == 0
    finally:
        at_kill.close()
    # The lease runs out (3 s); then the job is interrupted, and a new run completes. Instead
    # of waiting for it, a clock that runs on from just past the lease's end (the dead
    # process's lease on the source included).
    past_lease = max(timedelta(0), job.lease_expires_at - datetime.now(UTC)) + timedelta(
        milliseconds=1
    )
    after = Clocked(runtime, lambda: datetime.now(UTC) + past_lease, owner="after-the-lease")
    try:
        assert after.jobs.recover() == 1
        interrupted = runtime.jobs.get(SUPER, job.id)
        assert interrupted.state is JobState.INTERRUPTED
        assert interrupted.error == INTERRUPTED_REASON
        assert interrupted.ended_at == job.lease_expires_at
        assert interrupted.counts.added == job.added

        started = after.jobs.start(SUPER, JobKind.BULK, SOURCE)
        assert started.state is JobState.RUNNING
        rerun = wait_job(after.jobs, started.id, 120)
    finally:
        after.close()
    assert rerun.state is JobState.SUCCEEDED
    assert counts_of(rerun) == expected(
        read=len(persons), added=len(persons) - job.added, unchanged=job.added
    )
    final = user_rows(store)
    assert set(final) == set(by_uid)
    assert all(len(user.phones) == 2 for user in final.values())
