"""Prometheus metrics of one gateway process (SPEC §8), in a registry of its own.

The composition root makes one `Metrics` and hands it to what reports into it; the HTTP front
serves `registry` at /metrics. Labels are closed sets (outcomes, source ids from the config),
never user names or DNs, so the series count stays bounded.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.jobs.service import JobKind, JobState, JobView


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.binds = Counter(
            "idgate_ldap_binds",
            "LDAP binds by outcome (success, invalid_credentials, account_disabled, ...)",
            ["outcome"],
            registry=self.registry,
        )
        self.searches = Counter(
            "idgate_ldap_searches", "LDAP searches by result", ["result"], registry=self.registry
        )
        self.jit_syncs = Counter(
            "idgate_jit_syncs",
            "Just-in-time syncs by result: read (directory read), throttled (inside the window),"
            " failed (read failed or passed its deadline)",
            ["source", "result"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "idgate_upstream_seconds",
            "Latency of upstream directory operations",
            ["source", "operation"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "idgate_upstream_errors",
            "Upstream directory operations that failed (no server answered, timeout)",
            ["source", "operation"],
            registry=self.registry,
        )

        self.scim_requests = Counter(
            "idgate_scim_requests",
            "SCIM requests by endpoint (a source id, or admin), method and HTTP status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.scim_seconds = Histogram(
            "idgate_scim_seconds",
            "Latency of SCIM requests, from the request read to the response built",
            ["endpoint"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

        self.job_users = Counter(
            "idgate_job_users",
            "Users counted by jobs as they run (SPEC §5.3 progress), by kind, source, category",
            ["kind", "source", "category"],
            registry=self.registry,
        )

        self.bulk_jobs = Counter(
            "idgate_bulk_jobs",
            "Bulk sync jobs this process ended, by source and final state (succeeded, failed,"
            " held, stopped, interrupted)",
            ["source", "state"],
            registry=self.registry,
        )
        self.bulk_last_success = Gauge(
            "idgate_bulk_last_success_timestamp_seconds",
            "When the source's last bulk sync that read everything ended (Unix time), from the"
            " store: alert when it is older than a day",
            ["source"],
            registry=self.registry,
        )
        self.directory_last_answer = Gauge(
            "idgate_directory_last_answer_timestamp_seconds",
            "When one of the source's servers last answered this process (Unix time)",
            ["source"],
            registry=self.registry,
        )

    def job_finished(self, view: JobView) -> None:
        """A job this process ran has ended."""
        if view.kind is not JobKind.BULK or view.source_id is None:
            return
        self.bulk_jobs.labels(view.source_id, view.state.value).inc()
        if view.state is JobState.SUCCEEDED and view.ended_at is not None:
            self.bulk_last_success.labels(view.source_id).set(view.ended_at.timestamp())

    def bulk_succeeded_at(self, last: Iterable[tuple[str, datetime]]) -> None:
        """The last successful bulk sync of each source, as the store has it (at start)."""
        for source, at in last:
            self.bulk_last_success.labels(source).set(at.timestamp())

    def directory_answered(self, source: str, at: datetime) -> None:
        self.directory_last_answer.labels(source).set(at.timestamp())

    def job(self, kind: str, source: str | None, counts: Mapping[str, int]) -> None:
        for category, amount in counts.items():
            if amount:
                self.job_users.labels(kind, source or "", category).inc(amount)

    def scim(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.scim_requests.labels(endpoint, method, str(status)).inc()
        self.scim_seconds.labels(endpoint).observe(seconds)

    # The LDAP front's `Recorder` protocol.
    def bind(self, outcome: str) -> None:
        self.binds.labels(outcome).inc()

    def search(self, result: str) -> None:
        self.searches.labels(result).inc()

    def jit(self, source: str, result: str) -> None:
        self.jit_syncs.labels(source, result).inc()

    def upstream(self, source: str, operation: str, seconds: float, *, failed: bool) -> None:
        self.upstream_seconds.labels(source, operation).observe(seconds)
        if failed:
            self.upstream_errors.labels(source, operation).inc()
