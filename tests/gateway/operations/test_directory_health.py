"""Readiness and metrics say when a directory is gone (SPEC §8): /readyz lists each directory
source with when a server last answered, without deciding readiness by it, and the bulk
job metrics let an operator alert on "no complete sync for a day"."""

import pytest
from prometheus_client import generate_latest

from gateway.jobs.service import JobKind, JobState
from gateway.runtime.main import Runtime
from tests.gateway.bulkfixture import SUPER, wait_job
from tests.gateway.realgw import Gateways, gateway_config, slapd_source
from tests.reactor import blocking
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd


def directory_check(runtime: Runtime) -> tuple[bool, str, bool]:
    [check] = [c for c in runtime.readiness.check() if c.name == "directory corp"]
    return check.ok, check.detail, check.decides


def metric(runtime: Runtime, line_start: str) -> float | None:
    for line in generate_latest(runtime.metrics.registry).decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_readiness_lists_the_directory_without_being_decided_by_it(
    slapd_factory, gateways: Gateways, store_url: str
) -> None:
    server: Slapd = slapd_factory()
    runtime = gateways(gateway_config(store_url, slapd_source([server.url])))
    assert directory_check(runtime) == (True, "not asked yet", False)

    assert blocking(runtime.authenticator.authenticate, "alice", "alice-secret").ok
    ok, detail, decides = directory_check(runtime)
    assert (ok, decides) == (True, False)
    assert detail.startswith("last answered at ")
    assert metric(runtime, 'idgate_directory_last_answer_timestamp_seconds{source="corp"}')

    server.stop()
    assert not blocking(runtime.authenticator.authenticate, "alice", "alice-secret").ok
    ok, detail, _ = directory_check(runtime)
    assert not ok
    assert detail.startswith("failing since ") and "; last answered at " in detail
    # The store decides: the process still serves (cached decisions, SCIM, the admin API).
    assert all(c.ok for c in runtime.readiness.check() if c.decides)


def test_bulk_job_metrics_count_states_and_keep_the_last_success(
    slapd_factory, gateways: Gateways, store_url: str
) -> None:
    server: Slapd = slapd_factory()
    config = gateway_config(store_url, slapd_source([server.url]))
    runtime = gateways(config)

    done = wait_job(runtime.jobs, runtime.jobs.start(SUPER, JobKind.BULK, "corp").id)
    assert done.state is JobState.SUCCEEDED and done.ended_at is not None
    server.stop()
    failed = wait_job(runtime.jobs, runtime.jobs.start(SUPER, JobKind.BULK, "corp").id)
    assert failed.state is JobState.FAILED

    jobs = 'idgate_bulk_jobs_total{source="corp",state='
    assert metric(runtime, jobs + '"succeeded"}') == 1
    assert metric(runtime, jobs + '"failed"}') == 1
    last = 'idgate_bulk_last_success_timestamp_seconds{source="corp"}'
    assert metric(runtime, last) == done.ended_at.timestamp()
    # A gateway started later reads the last success from the store.
    assert metric(gateways(config), last) == done.ended_at.timestamp()
