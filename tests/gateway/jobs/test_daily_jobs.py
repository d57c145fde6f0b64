"""The daily jobs (SPEC §5.4 refresh, §5.5 cleanup) and their scheduler, on an injected clock,
against real slapd servers and both store backends.

The jobs run through `gateway.jobs.service.Jobs` with the works `gateway.runtime.main` wires,
rebuilt on a `tests.clock.Clock` (`bulkfixture.Clocked`); idle and creation times are set in
the store directly. Binds go through the runtime's own authenticator (real clock): the test clock is
set in the past so that a bind "now" comes after everything the clock did.
"""

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import delete

from gateway.config import Config, SyncConfig, parse_config
from gateway.engine.plan import SourceUser
from gateway.engine.types import DisabledBy, Reason, SourceStatus, Status, Trigger
from gateway.jobs.daily import Cleanup, Scheduler
from gateway.jobs.service import JobKind, Jobs, JobState, JobView
from gateway.operations.admin import directory_ids
from gateway.runtime.main import Runtime
from gateway.users.records import view_of
from gateway.users.service import UserService
from store import jobs as job_queries
from store import users as store_users
from store.db import Store
from store.job_columns import COUNTERS
from store.models import Lease
from tests.clock import Clock
from tests.gateway.bulkfixture import (
    SOURCE,
    SUPER,
    Clocked,
    audit,
    counts_of,
    details_of,
    job_rows,
    set_user_times,
    user_rows,
    wait_job,
)
from tests.gateway.realgw import Gateways, gateway_config, slapd_source
from tests.reactor import blocking
from tests.servers.slapd import Slapd

DAY = timedelta(days=1)


def expected(**counts: int) -> dict[str, int]:
    return {name: counts.get(name, 0) for name in COUNTERS}


@pytest.fixture
def clocked(gateways: Gateways) -> Iterator[Callable[..., Clocked]]:
    """`make(runtime, clock, **options)`: jobs on `clock`, closed before the runtimes."""
    made: list[Clocked] = []

    def make(runtime: Runtime, clock: Clock, **options: Any) -> Clocked:
        made.append(Clocked(runtime, clock, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def state_of(user: Any) -> tuple[str, str | None, str | None, bool]:
    return (user.status, user.disabled_by, user.reason, user.pending_deletion_since is not None)


ACTIVE = (Status.ACTIVE.value, None, None, False)


def disabled_by_source(reason: Reason) -> tuple[str, str, str, bool]:
    return (Status.DISABLED.value, DisabledBy.SOURCE.value, reason.value, False)


NEVER_USED = (Status.DISABLED.value, DisabledBy.CLEANUP.value, Reason.NEVER_USED.value, True)


# -- refresh (SPEC §5.4) -----------------------------------------------------------------------


def test_refresh_rereads_the_longest_idle_users_and_disables_the_gone(
    slapd_factory, store_url, gateways, clocked
):
    server: Slapd = slapd_factory()
    names = [f"r{n}" for n in range(1, 10)]
    dns = {name: server.add_user(name, mobile="+1 202 555 0200") for name in names}
    runtime = gateways(
        gateway_config(
            store_url,
            slapd_source([server.url]),
            refresh_batch=6,
            refresh_after_days=30,
            # 4 of these 12 users is a third: the mass-disable guard (tested on its own in
            # test_disable_guard.py) would hold the batch.
            max_disable_percent=False,
        )
    )
    clock = Clock(datetime.now(UTC))
    jobs = clocked(runtime, clock)
    synced_at = clock()
    assert jobs.run(JobKind.BULK).counts.added == 3 + len(names)  # alice, dave, frank, r1-r9

    clock.advance(days=60)
    now = clock()
    idle_days = {"r1": 50, "r2": 45, "r3": 40, "r4": 35, "r5": 32, "r6": 31, "r7": 20, "r8": 30}
    set_user_times(
        runtime.store,
        {
            **{name: {"last_auth_at": now - days * DAY} for name, days in idle_days.items()},
            # Never authenticated, created 100 days ago: the longest idle of all.
            "r9": {"last_auth_at": None, "created_at": now - 100 * DAY},
            **{name: {"last_auth_at": now - DAY} for name in ("alice", "dave", "frank")},
        },
    )
    # The six longest idle: r9 and r1 deleted, r2 locked, r3 out of scope, r4 changed, r5 as
    # it was. r6 (the seventh), r7 (idle 20 days) and r8 (exactly 30) are deleted too, but
    # not due: they stay as they are.
    for name in ("r9", "r1", "r6", "r7", "r8"):
        server.delete(dns[name])
    server.modify(dns["r2"], {"pwdAccountLockedTime": "000001010000Z"})
    server.rename(dns["r3"], "uid=r3", new_superior=server.contractors_dn)
    server.modify(dns["r4"], {"mobile": "+1 202 555 0404"})

    job = jobs.run(JobKind.REFRESH)

    assert (job.kind, job.state, job.error) == (JobKind.REFRESH, JobState.SUCCEEDED, None)
    assert counts_of(job) == expected(read=6, disabled=4, updated=1, unchanged=1)
    assert dict(details_of(runtime.store, job.id, "disabled")) == {
        "r9": Reason.MISSING.value,
        "r1": Reason.MISSING.value,
        "r2": Reason.SOURCE_DISABLED.value,
        "r3": Reason.MISSING.value,
    }
    assert [name for name, _ in details_of(runtime.store, job.id, "updated")] == ["r4"]
    assert [name for name, _ in details_of(runtime.store, job.id, "unchanged")] == ["r5"]
    rows = user_rows(runtime.store)
    for name in ("r9", "r1", "r3"):
        assert state_of(rows[name]) == disabled_by_source(Reason.MISSING), name
    assert state_of(rows["r2"]) == disabled_by_source(Reason.SOURCE_DISABLED)
    assert state_of(rows["r4"]) == ACTIVE
    assert [p.number for p in view_of(rows["r4"]).sms_phones] == ["+1 202 555 0404"]
    refreshed = {"r9", "r1", "r2", "r3", "r4", "r5"}
    for name, user in rows.items():
        assert user.last_sync_at == (now if name in refreshed else synced_at), name
        if name not in refreshed:
            assert state_of(user) == ACTIVE, name

    # A directory that no server answers fails the job, and changes nothing.
    before = {name: (state_of(user), user.last_sync_at) for name, user in rows.items()}
    server.stop()
    clock.advance(days=1)
    failed = jobs.run(JobKind.REFRESH)
    assert failed.state is JobState.FAILED
    assert failed.error and SOURCE in failed.error
    assert counts_of(failed) == expected()
    after = user_rows(runtime.store)
    assert {name: (state_of(u), u.last_sync_at) for name, u in after.items()} == before


def test_refresh_reaches_idle_users_beyond_one_days_batch(
    slapd_factory, store_url, gateways, clocked
):
    """More idle users than `refresh_batch`: the next day's refresh goes on with those it has
    not re-read yet. Re-reading the same longest-idle batch every day (they stay the longest
    idle: a refresh does not authenticate them) would leave every user past the batch
    unrefreshed for ever, deleted or disabled upstream or not (SPEC §5.4)."""
    server: Slapd = slapd_factory()
    runtime = gateways(gateway_config(store_url, slapd_source([server.url]), refresh_batch=2))
    clock = Clock(datetime.now(UTC))
    jobs = clocked(runtime, clock)
    jobs.run(JobKind.BULK)  # alice, dave, frank
    clock.advance(days=60)
    now = clock()
    set_user_times(
        runtime.store,
        {
            "alice": {"last_auth_at": now - 50 * DAY},
            "dave": {"last_auth_at": now - 40 * DAY},
            "frank": {"last_auth_at": now - 35 * DAY},
        },
    )
    day1 = jobs.run(JobKind.REFRESH)
    assert sorted(n for n, _ in details_of(runtime.store, day1.id, "unchanged")) == [
        "alice",
        "dave",
    ]

    clock.advance(days=1)
    day2 = jobs.run(JobKind.REFRESH)

    refreshed = [name for name, _ in details_of(runtime.store, day2.id, "unchanged")]
    assert "frank" in refreshed, f"day 2 re-read {refreshed} again, frank never"


# -- cleanup (SPEC §5.5) -----------------------------------------------------------------------


def test_cleanup_disables_the_never_used_then_deletes_them_unless_they_came_back(
    slapd_factory, store_url, gateways, clocked
):
    server: Slapd = slapd_factory()
    names = [f"c{n}" for n in range(1, 6)]
    for name in names:
        server.add_user(name, userPassword=f"{name}-pw", mobile="+1 202 555 0300")
    runtime = gateways(gateway_config(store_url, slapd_source([server.url])))
    store = runtime.store
    # Ahead of real time by nothing: the whole story happens in the past, the bind below
    # (on the runtime's real clock) comes after it.
    clock = Clock(datetime.now(UTC) - 40 * DAY)
    t0 = clock()
    jobs = clocked(runtime, clock)
    jobs.run(JobKind.BULK)
    set_user_times(
        store,
        {
            **{name: {"last_auth_at": t0 + DAY} for name in ("alice", "dave", "frank")},
            "c5": {"created_at": t0 + 5 * DAY},
        },
    )
    ids = {name: user.id for name, user in user_rows(store).items()}

    # 30 days and an hour later: c1-c4 never authenticated; c5 is 25 days old.
    clock.advance(days=30, hours=1)
    marked_at = clock()
    first = jobs.run(JobKind.CLEANUP)

    assert (first.kind, first.source_id, first.state) == (JobKind.CLEANUP, None, JobState.SUCCEEDED)
    assert counts_of(first) == expected(read=4, disabled=4)
    rows = user_rows(store)
    for name in ("c1", "c2", "c3", "c4"):
        assert state_of(rows[name]) == NEVER_USED, name
        assert rows[name].pending_deletion_since == marked_at
    for name in ("c5", "alice", "dave", "frank"):
        assert state_of(rows[name]) == ACTIVE, name
    assert sorted(e.user_name for e in audit(store, "user.marked_never_used")) == [
        "c1",
        "c2",
        "c3",
        "c4",
    ]

    # Bulk sync leaves them pending (SPEC §4.2, last row) ...
    clock.advance(hours=1)
    again = jobs.run(JobKind.BULK)
    assert (again.counts.added, again.counts.updated, again.counts.disabled) == (0, 0, 0)
    rows = user_rows(store)
    assert [state_of(rows[name]) for name in ("c1", "c2", "c3", "c4")] == [NEVER_USED] * 4
    # ... an authentication (JIT) revives the user.
    outcome = blocking(runtime.authenticator.authenticate, "c1", "c1-pw")
    assert outcome.ok, outcome
    assert outcome.user_id == ids["c1"]
    runtime.recorder.flush()
    revived = user_rows(store)["c1"]
    assert state_of(revived) == ACTIVE
    assert revived.last_auth_at is not None

    # Seven days after the marking: c2-c4 are deleted, each with an audit event; c1 stays;
    # c5 is 32 days old by now and gets marked.
    clock.advance(days=7)
    second = jobs.run(JobKind.CLEANUP)

    assert second.state is JobState.SUCCEEDED
    assert counts_of(second) == expected(read=4, disabled=1, deleted=3)
    assert sorted(details_of(store, second.id, "deleted")) == [
        (name, "pending deletion expired") for name in ("c2", "c3", "c4")
    ]
    rows = user_rows(store)
    assert sorted(rows) == ["alice", "c1", "c5", "dave", "frank"]
    assert state_of(rows["c1"]) == ACTIVE
    assert state_of(rows["c5"]) == NEVER_USED
    purged = audit(store, "user.purged")
    assert sorted((e.user_name, e.user_id, e.actor) for e in purged) == [
        (name, ids[name], "cleanup") for name in ("c2", "c3", "c4")
    ]
    assert all(e.details["pending_since"] == marked_at.isoformat() for e in purged)

    # A deleted user comes back on their next sync as a new record.
    back = blocking(runtime.authenticator.authenticate, "c2", "c2-pw")
    assert back.ok, back
    assert back.user_id not in (None, ids["c2"])
    assert state_of(user_rows(store)["c2"]) == ACTIVE


def _cleanup_jobs(store: Store, clock: Clock) -> tuple[UserService, Jobs]:
    with store.writing() as session:
        store_users.ensure_sources(session, [(SOURCE, "ldap")], clock())
    users = UserService(clock=clock)
    jobs = Jobs(
        store,
        lambda kind, source: Cleanup(users, store, SyncConfig(), clock=clock),
        directory_sources=lambda: [SOURCE],
        clock=clock,
    )
    return users, jobs


def _run_cleanup(jobs: Jobs) -> JobView:
    return wait_job(jobs, jobs.start(SUPER, JobKind.CLEANUP).id)


def test_cleanup_marks_a_user_created_exactly_30_days_ago(store):
    """SPEC §5.5: "created at least 30 days ago"."""
    clock = Clock()
    users, jobs = _cleanup_jobs(store, clock)
    try:
        reports = [SourceUser(f"e-{n}", n, SourceStatus.ENABLED) for n in ("old", "young")]
        with store.writing() as session:
            users.apply_batch(session, SOURCE, reports, Trigger.BULK)
        set_user_times(
            store,
            {
                "old": {"created_at": clock() - 30 * DAY},
                "young": {"created_at": clock() - 30 * DAY + timedelta(seconds=1)},
            },
        )
        job = _run_cleanup(jobs)
        rows = user_rows(store)
        assert (state_of(rows["old"]), state_of(rows["young"])) == (NEVER_USED, ACTIVE)
        assert job.counts.disabled == 1
    finally:
        jobs.close()


def test_cleanup_deletes_a_user_pending_for_exactly_7_days(store):
    """SPEC §5.5: "pending deletion for 7 days: deleted"."""
    clock = Clock()
    users, jobs = _cleanup_jobs(store, clock)
    try:
        with store.writing() as session:
            report = SourceUser("e-1", "gone", SourceStatus.ENABLED)
            users.apply_batch(session, SOURCE, [report], Trigger.BULK)
        with store.writing() as session:
            users.mark_never_used(session, [user_rows(store)["gone"].id])
        clock.advance(days=7)
        job = _run_cleanup(jobs)
        assert job.counts.deleted == 1
        assert user_rows(store) == {}
    finally:
        jobs.close()


# -- the scheduler -----------------------------------------------------------------------------


def two_source_config(store_url: str, slapd: Slapd) -> Config:
    return parse_config(
        {
            "store": {"url": store_url},
            "sync": {"jit_interval_seconds": 0},
            "sources": [
                slapd_source([slapd.url]),
                slapd_source([slapd.url], id="lab", roots=[slapd.contractors_dn]),
            ],
        },
        {},
    )


def schedulers(
    runtime: Runtime, clock: Clock, clocked: Callable[..., Clocked], owners: list[str]
) -> list[tuple[Scheduler, Jobs]]:
    made = []
    for owner in owners:
        jobs = clocked(runtime, clock, owner=owner).jobs
        made.append(
            (
                Scheduler(
                    runtime.store,
                    jobs,
                    sources=directory_ids(runtime.config),
                    run_at=runtime.config.sync.daily_run_at,
                    clock=clock,
                    owner=owner,
                ),
                jobs,
            )
        )
    return made


def tick_together(pairs: list[tuple[Scheduler, Jobs]]) -> list[tuple[JobView, Jobs]]:
    """Every scheduler ticks at the same instant; returns what each started, waited for."""
    barrier = threading.Barrier(len(pairs))
    started: list[list[JobView]] = [[] for _ in pairs]

    def tick(index: int) -> None:
        barrier.wait(10)
        started[index] = pairs[index][0].tick()

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    done = []
    for (_, jobs), views in zip(pairs, started, strict=True):
        done += [(wait_job(jobs, view.id), jobs) for view in views]
    return done


def tasks(started: list[tuple[JobView, Jobs]]) -> list[tuple[str, str | None]]:
    return sorted(((view.kind.value, view.source_id) for view, _ in started), key=str)


DAILY = sorted([("refresh", SOURCE), ("refresh", "lab"), ("cleanup", None)], key=str)


def test_two_schedulers_start_each_daily_job_once_a_day(slapd, store_url, gateways, clocked):
    runtime = gateways(two_source_config(store_url, slapd))
    assert runtime.config.sync.daily_run_at == time(3, 0)
    clock = Clock(datetime(2026, 11, 22, 2, 59, tzinfo=UTC))
    pairs = schedulers(runtime, clock, clocked, ["gw-a", "gw-b"])

    assert tick_together(pairs) == []  # before 03:00 nothing is due

    clock.now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    first = tick_together(pairs)
    assert tasks(first) == DAILY  # each once, whichever process took it
    assert all(view.state is JobState.SUCCEEDED for view, _ in first)
    assert {view.requested_by for view, _ in first} == {"system"}

    assert tick_together(pairs) == []  # the same instant again
    clock.now = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    assert tick_together(pairs) == []  # later the same day
    clock.now = datetime(2026, 11, 23, 2, 59, tzinfo=UTC)
    assert tick_together(pairs) == []  # the next day, before its run time

    clock.now = datetime(2026, 11, 23, 3, 0, 30, tzinfo=UTC)
    second = tick_together(pairs)
    assert tasks(second) == DAILY
    assert len(job_rows(runtime.store)) == 6


def test_a_daily_job_that_cannot_start_is_tried_again_later(slapd, store_url, gateways, clocked):
    runtime = gateways(two_source_config(store_url, slapd))
    clock = Clock(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    pairs = schedulers(runtime, clock, clocked, ["gw-a"])
    # Another process runs a job of corp (a bulk sync): it holds the source's lease.
    with runtime.store.writing() as session:
        assert job_queries.take_lease(session, "job:corp", "elsewhere", clock(), clock() + DAY)

    first = tick_together(pairs)
    assert tasks(first) == sorted([("refresh", "lab"), ("cleanup", None)], key=str)
    clock.advance(minutes=10)
    assert tick_together(pairs) == []  # postponed by 15 minutes, not retried at every tick
    with runtime.store.writing() as session:
        session.execute(delete(Lease).where(Lease.name == "job:corp"))
    clock.advance(minutes=5)
    assert tasks(tick_together(pairs)) == [("refresh", SOURCE)]
    clock.advance(hours=1)
    assert tick_together(pairs) == []  # once started, it is done for the day


class CountingScheduler(Scheduler):
    """A scheduler whose ticks are counted; the first one fails as a store that is down."""

    def __init__(self, stop_after: int) -> None:
        self.ticks = 0
        self._stop_after = stop_after
        self.stop = threading.Event()

    def tick(self) -> list[JobView]:
        self.ticks += 1
        if self.ticks >= self._stop_after:
            self.stop.set()
        if self.ticks == 1:
            raise ConnectionError("the store is down")
        return []


def test_the_scheduler_ticks_at_start_without_waiting_an_interval():
    """A gateway started after the day's run time starts what is due at once (not a minute
    later); a failing tick is logged and the next one comes an interval later."""
    scheduler = CountingScheduler(stop_after=1)
    thread = threading.Thread(target=scheduler.run, args=(scheduler.stop, 3600.0))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()  # the first tick came at once, and stop ended the wait
    assert scheduler.ticks == 1

    again = CountingScheduler(stop_after=3)
    thread = threading.Thread(target=again.run, args=(again.stop, 0.01))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert again.ticks == 3  # the failed first tick did not end the loop
