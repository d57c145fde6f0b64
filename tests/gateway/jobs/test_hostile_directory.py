"""Bulk sync against a hostile directory: no incomplete read disables anyone (SPEC §5.3).

Every case starts from a store that a first, complete run filled (1,200 users and the seed,
all active), then turns the real slapd hostile the way production directories are: the
service account under slapd's default size limit (the defect this suite was written for: a
run that read 500 of 1,205 entries disabled the other 705), a paged total, a time limit, an
administrative limit, paging refused, a root deleted, renamed or turned into a referral, the
server killed between two pages. The second run must fail with a reason that names the
limit and the fix, leave every status as it was (nobody missing, nobody disabled), and a
follow-up single-user sync and bind of an in-scope user must still succeed.

Also here: the connection test reports the same, root by root, and an Active Directory
(Samba) whose query policy asks for smaller pages than the gateway reads completely.
"""

from collections.abc import Callable
from typing import Any

import pytest
from ldap3 import MODIFY_REPLACE

from gateway.auth.binds import AuthReason
from gateway.directory.completeness import Shortfall
from gateway.engine.types import Status
from gateway.errors import IncompleteRead
from gateway.jobs.service import JobKind, JobState, JobView
from gateway.runtime.main import Runtime
from tests.gateway.bulkfixture import SUPER, load_people, people, user_rows, wait_job, wait_until
from tests.gateway.realgw import (
    SAMBA_SOURCE,
    Gateways,
    gateway_config,
    samba_source,
    slapd_source,
)
from tests.reactor import blocking
from tests.servers.samba import SambaAD
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd

SOURCE = "corp"
COUNT = 1200
SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
CONTRACTORS = f"ou=contractors,{SUFFIX}"
SERVICE_DN = f"cn=idgate,ou=services,{SUFFIX}"
#: Enabled users of the first run: the loaded ones, alice, dave, frank and erin (contractors).
ACTIVE = COUNT + 4


def bulk(runtime: Runtime, timeout: float = 120) -> JobView:
    started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    return wait_job(runtime.jobs, started.id, timeout)


def statuses(runtime: Runtime) -> dict[str, tuple[str, str, str | None]]:
    return {
        name: (user.status, user.source_status, user.reason)
        for name, user in user_rows(runtime.store).items()
    }


@pytest.fixture
def synced(
    slapd_factory: Callable[..., Slapd], gateways: Gateways, store_url: str
) -> Callable[..., tuple[Slapd, Runtime]]:
    """`make(**source)`: a slapd with 1,200 more users, and a runtime whose first bulk run
    read all of it (roots ou=people and ou=contractors unless given)."""

    def make(**source: Any) -> tuple[Slapd, Runtime]:
        server = slapd_factory()
        load_people(server, people(COUNT, server.people_dn))
        options: dict[str, Any] = {"roots": [PEOPLE, CONTRACTORS], "page_size": 200}
        options.update(source)
        runtime = gateways(
            gateway_config(
                store_url, slapd_source([server.url], operation_timeout_seconds=5, **options)
            )
        )
        first = bulk(runtime)
        assert (first.state, first.counts.added) == (JobState.SUCCEEDED, ACTIVE), first
        assert set(statuses(runtime).values()) == {("active", "enabled", None)}
        return server, runtime

    return make


def assert_nobody_disabled_and_alice_still_works(
    runtime: Runtime, before: dict[str, tuple[str, str, str | None]], job: JobView
) -> None:
    assert job.state is JobState.FAILED, job
    assert job.counts.disabled == 0
    assert statuses(runtime) == before  # nobody missing, nobody disabled
    alice = user_rows(runtime.store)["alice"]
    synced = runtime.lookup.sync(SUPER, alice.id)
    assert synced.state is not None and synced.state.status.value == Status.ACTIVE.value
    outcome = blocking(runtime.authenticator.authenticate, "alice", "alice-secret")
    assert outcome.reason is AuthReason.SUCCESS, outcome


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("limits", "shortfall", "fix"),
    [
        # slapd's defaults for an ordinary account: 500 entries, paged or not.
        ([], Shortfall.SIZE_LIMIT, f'dn.exact="{SERVICE_DN}" size.prtotal=unlimited'),
        (
            ["users size.soft=500 size.hard=500 size.prtotal=1000"],
            Shortfall.SIZE_LIMIT,
            "size.prtotal=unlimited",
        ),
        (
            ["users size.unchecked=1000 size.prtotal=unlimited"],
            Shortfall.ADMIN_LIMIT,
            "size.unchecked=unlimited",
        ),
        (["users size.prtotal=disabled"], Shortfall.PAGING_REFUSED, "size.prtotal=disabled"),
    ],
    ids=["default-size-limit", "paged-total", "admin-limit", "paging-refused"],
)
def test_a_directory_limit_fails_the_run_and_disables_nobody(
    synced: Callable[..., tuple[Slapd, Runtime]],
    limits: list[str],
    shortfall: Shortfall,
    fix: str,
) -> None:
    server, runtime = synced()
    before = statuses(runtime)
    server.set_limits(limits)

    job = bulk(runtime)

    assert job.error is not None
    assert f"stopped at {shortfall.value}" in job.error
    assert f"root {PEOPLE}" in job.error and server.url in job.error
    assert fix in job.error
    assert "nobody was disabled or marked missing" in job.error
    assert_nobody_disabled_and_alice_still_works(runtime, before, job)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_time_limit_fails_the_run_and_disables_nobody(
    synced: Callable[..., tuple[Slapd, Runtime]],
) -> None:
    server, runtime = synced()
    before = statuses(runtime)
    # Every operation waits 2 s, past the account's time limit of 1 s: timeLimitExceeded.
    server.set_limits(["users time=1 size.prtotal=unlimited"])
    server.set_delay(2)

    job = bulk(runtime)

    server.set_delay(0)
    assert job.error is not None and "stopped at a time limit" in job.error
    assert "time.hard=unlimited" in job.error
    assert_nobody_disabled_and_alice_still_works(runtime, before, job)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("change", ["deleted", "renamed", "referral"])
def test_a_root_gone_between_two_runs_fails_the_second_and_disables_nobody(
    synced: Callable[..., tuple[Slapd, Runtime]], change: str
) -> None:
    server, runtime = synced()
    before = statuses(runtime)
    if change == "deleted":
        server.delete(f"uid=erin,{CONTRACTORS}")
        server.delete(CONTRACTORS)
    elif change == "renamed":
        server.rename(CONTRACTORS, "ou=vendors")
    else:
        server.make_referral(CONTRACTORS)

    job = bulk(runtime)

    assert job.error is not None and f"root {CONTRACTORS}" in job.error
    expected = Shortfall.REFERRAL if change == "referral" else Shortfall.NO_ROOT
    assert f"stopped at {expected.value}" in job.error
    # The 1,205 users of ou=people were read again and are unchanged; erin is not missing.
    assert job.counts.unchanged == ACTIVE - 1
    assert_nobody_disabled_and_alice_still_works(runtime, before, job)
    # Erin's own sync cannot tell a deletion from a root it could not read: nothing changes.
    erin = user_rows(runtime.store)["erin"]
    with pytest.raises(IncompleteRead, match="stopped at"):
        runtime.lookup.sync(SUPER, erin.id)
    assert statuses(runtime)["erin"] == before["erin"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_server_killed_between_two_pages_fails_the_run_and_disables_nobody(
    synced: Callable[..., tuple[Slapd, Runtime]],
) -> None:
    server, runtime = synced()
    before = statuses(runtime)
    # A second a page (7 pages): the kill lands between two of them, long before the end.
    server.set_delay(1)
    started = runtime.jobs.start(SUPER, JobKind.BULK, SOURCE)
    wait_until(
        lambda: runtime.jobs.get(SUPER, started.id).counts.read > 0, 30, "the first page written"
    )
    server.kill()
    job = wait_job(runtime.jobs, started.id, 60)

    assert job.error is not None and "stopped at a connection lost between pages" in job.error
    assert job.counts.read < ACTIVE
    server.start()
    server.set_delay(0)
    assert_nobody_disabled_and_alice_still_works(runtime, before, job)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_connection_test_reads_every_root_and_names_the_limit(
    synced: Callable[..., tuple[Slapd, Runtime]],
) -> None:
    server, runtime = synced()

    test = runtime.administration.test(SUPER, SOURCE)
    assert test.ok
    [check] = test.servers
    assert [(r.root, r.entries, r.complete) for r in check.roots] == [
        (PEOPLE, COUNT + 5, True),  # bob and carol are in scope, though not synchronized
        (CONTRACTORS, 1, True),
    ]
    assert check.roots[0].pages == 7  # 1,205 entries, 200 a page

    server.set_limits([])
    server.rename(CONTRACTORS, "ou=vendors")
    test = runtime.administration.test(SUPER, SOURCE)

    assert not test.ok
    [check] = test.servers
    people_root, contractors_root = check.roots
    assert (people_root.complete, people_root.entries) == (False, 500)
    assert people_root.error is not None and "size.prtotal=unlimited" in people_root.error
    assert not contractors_root.complete
    assert contractors_root.error is not None
    assert "a root that does not exist" in contractors_root.error
    assert check.error is not None and check.error.startswith(f"root {PEOPLE}: ")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_ad_pages_smaller_than_asked_are_read_to_the_end(
    samba_ad: SambaAD, gateways: Gateways, store_url: str
) -> None:
    """Active Directory caps a page at its query policy's MaxPageSize; the gateway asks for
    pages of 200 and must follow the cookie to the end however small they come. (Samba 4.17
    stores MaxPageSize but answers full pages regardless, so what this shows there is that a
    run under such a policy completes twice and nobody goes missing; Windows AD would send
    pages of 50.) samba_ad first: it skips where Samba cannot run."""
    with SambaAD(seed_users=False) as dc:
        users = dc.add_users(300)
        with dc.admin_connection() as conn:
            for user in users:  # enabled, no password needed: cheap active users
                conn.modify(
                    user.dn, {"userAccountControl": [(MODIFY_REPLACE, [str(0x200 | 0x20)])]}
                )
                assert conn.result["result"] == 0, conn.result
        dc.set_max_page_size(50)
        runtime = gateways(gateway_config(store_url, samba_source(dc, page_size=200)))

        first = wait_job(
            runtime.jobs, runtime.jobs.start(SUPER, JobKind.BULK, SAMBA_SOURCE).id, 120
        )
        again = wait_job(
            runtime.jobs, runtime.jobs.start(SUPER, JobKind.BULK, SAMBA_SOURCE).id, 120
        )

    assert first.state is JobState.SUCCEEDED, first
    assert (first.counts.read, first.counts.added) == (300, 300)
    assert again.state is JobState.SUCCEEDED, again
    assert (again.counts.read, again.counts.unchanged, again.counts.disabled) == (300, 300, 0)
