"""The mass-disable guard (SPEC §5.3): a run that would disable too many disables none.

As Entra ID provisioning's accidental-deletions threshold: a bulk run or refresh batch that
would disable more of a source's active users than `max_disable_count` or
`max_disable_percent` of them ends `held` with the whole list, and a super admin confirms
(exactly that list is disabled) or discards it. Real slapd; SQLite and PostgreSQL.

The scenario of the issue runs against two real `idgate serve` processes sharing a store:
5,000 users, the user filter edited on one gateway so that 90 % fall out of scope, a bulk run
there (held, nobody disabled), and `idgate sync confirm` on the other gateway.
"""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.engine.types import Reason, Status, Trigger
from gateway.errors import Conflict
from gateway.jobs.service import JobKind, JobState, JobView
from gateway.runtime.main import Runtime
from gateway.users.service import utcnow
from store.db import Store
from store.models import User
from tests.gateway.admin_gateway import idgate_cli
from tests.gateway.bulkfixture import (
    SUPER,
    audit,
    details_of,
    load_people,
    people,
    set_user_times,
    user_rows,
    wait_job,
)
from tests.gateway.realgw import Gateways, gateway_config, slapd_source
from tests.resilience.support import FullGateway
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd

SOURCE = "corp"
#: Seed users a run adds: alice, dave, frank (bob is locked, carol expired).
SEEDED = 3


def bulk(runtime: Runtime, timeout: float = 120) -> JobView:
    return wait_job(runtime.jobs, runtime.jobs.start(SUPER, JobKind.BULK, SOURCE).id, timeout)


def active_names(runtime: Runtime) -> set[str]:
    return {n for n, u in user_rows(runtime.store).items() if u.status == Status.ACTIVE.value}


@pytest.fixture
def directory(slapd_factory: Callable[..., Slapd]) -> Slapd:
    server = slapd_factory()
    load_people(server, people(50, server.people_dn))
    return server


@pytest.fixture
def corp(directory: Slapd, gateways: Gateways, store_url: str) -> Callable[..., Runtime]:
    """`make(*, user_filter=None, **sync)`: a runtime of the corp source on the test's store."""

    def make(user_filter: str | None = None, **sync: Any) -> Runtime:
        source = slapd_source([directory.url], page_size=20)
        if user_filter is not None:
            source["user_filter"] = user_filter
        return gateways(gateway_config(store_url, source, **sync))

    return make


#: Of p-00001..p-00050 this keeps the 5 ending in 0, and none of the seed users.
TENTH = "(uid=p-*0)"


def test_a_filter_edit_that_would_disable_most_users_is_held_then_confirmed(
    corp: Callable[..., Runtime],
) -> None:
    everyone = corp()
    assert bulk(everyone).counts.added == 50 + SEEDED
    narrowed = corp(user_filter=TENTH)
    leaving = {f"p-{n:05d}" for n in range(1, 51) if n % 10} | {"alice", "dave", "frank"}

    held = bulk(narrowed)

    assert held.state is JobState.HELD, held
    assert held.error is None
    assert held.held_reason is not None
    assert "the run would disable 48 users" in held.held_reason
    assert "max_disable_percent (20 %)" in held.held_reason
    assert (held.counts.held, held.counts.disabled) == (48, 0)
    assert active_names(narrowed) == leaving | {f"p-{n:05d}" for n in range(10, 51, 10)}
    holds = narrowed.jobs.holds(SUPER, held.id)
    assert {h.user_name for h in holds} == leaving
    assert {h.source_status for h in holds} == {"missing"}
    assert len(details_of(narrowed.store, held.id, "held")) == 48
    # Another run of the source is free to start: the hold keeps no lease.
    with pytest.raises(Conflict, match="is not held"):
        narrowed.jobs.confirm(SUPER, held.id - 1)

    confirmed = narrowed.jobs.confirm(SUPER, held.id)
    assert confirmed.state is JobState.RUNNING
    done = wait_job(narrowed.jobs, held.id)

    assert done.state is JobState.SUCCEEDED, done
    assert (done.counts.held, done.counts.disabled) == (48, 48)
    rows = user_rows(narrowed.store)
    disabled = {n for n, u in rows.items() if u.status == Status.DISABLED.value}
    assert disabled - {"bob", "carol"} == leaving
    assert all(rows[n].reason == Reason.MISSING.value for n in leaving)
    assert narrowed.jobs.holds(SUPER, held.id) == []
    [event] = audit(narrowed.store, "job.confirmed")
    assert (event.actor, event.details["job"], event.details["held"]) == ("ops", held.id, 48)
    with pytest.raises(Conflict, match="is not held"):
        narrowed.jobs.confirm(SUPER, held.id)


def test_a_discarded_hold_disables_nobody(corp: Callable[..., Runtime]) -> None:
    everyone = corp()
    bulk(everyone)
    narrowed = corp(user_filter=TENTH)
    held = bulk(narrowed)
    assert held.state is JobState.HELD

    discarded = narrowed.jobs.discard(SUPER, held.id)

    assert discarded.state is JobState.DISCARDED
    assert len(active_names(narrowed)) == 50 + SEEDED
    assert narrowed.jobs.holds(SUPER, held.id) == []
    [event] = audit(narrowed.store, "job.discarded")
    assert (event.actor, event.details["job"]) == ("ops", held.id)
    with pytest.raises(Conflict, match="is not held"):
        narrowed.jobs.confirm(SUPER, held.id)


def test_a_newer_run_supersedes_a_held_one(corp: Callable[..., Runtime]) -> None:
    bulk(corp())
    narrowed = corp(user_filter=TENTH)
    held = bulk(narrowed)

    newer = bulk(narrowed)

    assert newer.state is JobState.HELD
    old = narrowed.jobs.get(SUPER, held.id)
    assert old.state is JobState.DISCARDED
    assert old.error == f"superseded by job {newer.id}"
    with pytest.raises(Conflict):
        narrowed.jobs.confirm(SUPER, held.id)


def test_source_reported_disables_count_and_are_held_too(
    corp: Callable[..., Runtime], directory: Slapd
) -> None:
    runtime = corp()
    bulk(runtime)
    locked = [f"p-{n:05d}" for n in range(1, 21)]
    for name in locked:
        directory.modify(
            f"uid={name},{directory.people_dn}", {"pwdAccountLockedTime": "000001010000Z"}
        )

    held = bulk(runtime)

    assert held.state is JobState.HELD, held
    assert {
        h.user_name: h.source_status for h in runtime.jobs.holds(SUPER, held.id)
    } == dict.fromkeys(locked, "disabled")
    assert len(active_names(runtime)) == 50 + SEEDED
    runtime.jobs.confirm(SUPER, held.id)
    done = wait_job(runtime.jobs, held.id)
    rows = user_rows(runtime.store)
    assert done.counts.disabled == 20
    assert all(rows[n].reason == Reason.SOURCE_DISABLED.value for n in locked)
    # The data of that run was not written: the next run writes it, and changes no status.
    again = bulk(runtime)
    assert (again.state, again.counts.disabled) == (JobState.SUCCEEDED, 0)


def test_a_user_read_again_since_the_hold_keeps_the_newer_read(
    corp: Callable[..., Runtime],
) -> None:
    everyone = corp()
    bulk(everyone)
    narrowed = corp(user_filter=TENTH)
    held = bulk(narrowed)
    # An administrator syncs p-00001 through a gateway that still sees it in scope.
    p1 = user_rows(everyone.store)["p-00001"]
    everyone.lookup.sync(SUPER, p1.id)

    narrowed.jobs.confirm(SUPER, held.id)
    done = wait_job(narrowed.jobs, held.id)

    assert done.counts.disabled == 47
    assert user_rows(narrowed.store)["p-00001"].status == Status.ACTIVE.value


@pytest.mark.parametrize(
    ("sync", "held"),
    [
        ({"max_disable_count": False, "max_disable_percent": False}, False),
        ({"max_disable_count": 100, "max_disable_percent": False}, False),
        ({"max_disable_count": 10, "max_disable_percent": False}, True),
        ({"max_disable_count": False, "max_disable_percent": 95}, False),
    ],
    ids=["off", "count-above", "count-below", "percent-above"],
)
def test_the_thresholds_decide(
    corp: Callable[..., Runtime], sync: dict[str, Any], held: bool
) -> None:
    bulk(corp())

    job = bulk(corp(user_filter=TENTH, **sync))

    assert job.state is (JobState.HELD if held else JobState.SUCCEEDED), job
    assert job.counts.disabled == (0 if held else 48)


def test_a_source_sets_its_own_thresholds(
    directory: Slapd, gateways: Gateways, store_url: str
) -> None:
    first = gateways(gateway_config(store_url, slapd_source([directory.url])))
    bulk(first)
    source = slapd_source([directory.url], user_filter=TENTH, max_disable_percent=False)
    runtime = gateways(gateway_config(store_url, source))

    job = bulk(runtime)

    assert (job.state, job.counts.disabled) == (JobState.SUCCEEDED, 48)


def test_a_refresh_batch_is_held_as_well(corp: Callable[..., Runtime], directory: Slapd) -> None:
    runtime = corp(refresh_after_days=7)
    bulk(runtime)
    gone = [f"p-{n:05d}" for n in range(1, 31)]
    for name in gone:
        directory.delete(f"uid={name},{directory.people_dn}")
    long_ago = utcnow() - timedelta(days=40)  # everyone idle (never signed in) for 40 days
    set_user_times(
        runtime.store,
        {
            name: {"created_at": long_ago, "last_sync_at": long_ago}
            for name in user_rows(runtime.store)
        },
    )

    job = wait_job(runtime.jobs, runtime.jobs.start(SUPER, JobKind.REFRESH, SOURCE).id)

    assert job.state is JobState.HELD, job
    assert {h.user_name for h in runtime.jobs.holds(SUPER, job.id)} == set(gone)
    assert len(active_names(runtime)) == 50 + SEEDED
    runtime.jobs.confirm(SUPER, job.id)
    done = wait_job(runtime.jobs, job.id)
    assert done.counts.disabled == 30
    audit_rows = audit(runtime.store, "user.status_changed")
    assert {e.actor for e in audit_rows if e.user_name in gone} == {f"sync:{Trigger.REFRESH}"}


# -- the scenario: 5,000 users, two gateway processes ---------------------------------


def cli_json(gateway: FullGateway, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any]]:
    done = idgate_cli(gateway.http_url, *args, "--json", timeout=timeout)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_5000_users_a_filter_excluding_90_percent_held_then_confirmed_on_another_gateway(
    slapd_factory: Callable[..., Slapd], store_url: str
) -> None:
    server = slapd_factory()
    load_people(server, people(5000, server.people_dn))
    everyone = slapd_source([server.url], operation_timeout_seconds=10)
    # uid p-00001 .. p-05000: those ending in 0 stay, 4,500 and the 3 seed users leave.
    narrowed = {**everyone, "user_filter": "(uid=p-*0)"}
    with (
        FullGateway([everyone], store_url=store_url) as first,
        FullGateway([narrowed], store_url=store_url) as second,
    ):
        code, job = cli_json(first, "sync", "run", SOURCE)
        assert (code, job["state"], job["counts"]["added"]) == (0, "succeeded", 5003)

        code, held = cli_json(second, "sync", "run", SOURCE)

        assert (code, held["state"]) == (1, "held")
        assert (held["counts"]["held"], held["counts"]["disabled"]) == (4503, 0)
        assert "max_disable_count (500)" in held["held_reason"]
        store = Store.connect(store_url)
        try:
            counts = _statuses(store)
            assert counts == {"active": 5003}  # nobody disabled (bob and carol were never added)
            code, listed = cli_json(second, "sync", "holds", str(held["id"]))
            assert code == 0
            names = {row["user_name"] for row in listed["holds"]}
            leaving = {f"p-{n:05d}" for n in range(1, 5001) if n % 10} | {"alice", "dave", "frank"}
            assert names == leaving

            code, done = cli_json(first, "sync", "confirm", str(held["id"]))

            assert (code, done.get("state")) == (0, "succeeded"), done
            assert done["counts"]["disabled"] == 4503
            assert _statuses(store) == {"active": 500, "disabled": 4503}
            assert _disabled_names(store) == leaving
        finally:
            store.close()


def _statuses(store: Store) -> dict[str, int]:
    with store.reading() as session:
        rows = session.execute(
            select(User.status, func.count()).where(User.source_id == SOURCE).group_by(User.status)
        ).all()
        return {status: count for status, count in rows}


def _disabled_names(store: Store) -> set[str]:
    with store.reading() as session:
        return set(
            session.scalars(
                select(User.user_name).where(User.source_id == SOURCE, User.status == "disabled")
            )
        )
