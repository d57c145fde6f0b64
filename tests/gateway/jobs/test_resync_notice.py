"""Resync all (SPEC §5.6): one bulk job per directory source, then one completion notice, a
signed webhook POST to a real HTTP receiver on loopback, and a "resync.completed" audit event.

The shared `slapd` is only read (bulk jobs write nothing upstream); its two scopes make two
sources, `corp` (ou=people) and `lab` (ou=contractors).
"""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway.config import Config, parse_config
from gateway.jobs.notify import Notifier, sign
from gateway.jobs.service import JobRunning, JobState, ResyncView
from gateway.runtime.main import Runtime
from gateway.users.service import utcnow
from store import jobs as job_queries
from store.job_columns import COUNTERS
from store.models import AuditEvent
from tests.gateway.bulkfixture import SOURCE, SUPER, Clocked, audit, notifier_callable, wait_until
from tests.gateway.realgw import Gateways, slapd_source
from tests.servers.slapd import Slapd

SECRET = "hook-secret-for-tests"
PATH = "/hooks/idgate"


@dataclass(frozen=True)
class Received:
    path: str
    headers: HTTPMessage
    body: bytes


class Receiver:
    """A webhook endpoint: records every request, answers from `statuses`, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[Received] = []
        self._statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, self.headers, body))
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def clocked(gateways: Gateways) -> Iterator[Callable[..., Clocked]]:
    made: list[Clocked] = []

    def make(runtime: Runtime, **options: Any) -> Clocked:
        made.append(Clocked(runtime, utcnow, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def resync_config(store_url: str, slapd: Slapd, webhook_url: str) -> Config:
    return parse_config(
        {
            "store": {"url": store_url},
            "sync": {"jit_interval_seconds": 0},
            "notifications": {"webhook_url": webhook_url, "webhook_secret": SECRET},
            "sources": [
                slapd_source([slapd.url]),
                slapd_source([slapd.url], id="lab", roots=[slapd.contractors_dn]),
            ],
        },
        {},
    )


def verified(request: Received) -> dict[str, Any]:
    """The request's JSON document, after checking it is the signed, fresh resync notice."""
    assert request.path == PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Idgate-Event"] == "resync.completed"
    timestamp = int(request.headers["X-Idgate-Timestamp"])
    assert abs(timestamp - utcnow().timestamp()) < 120
    expected = sign(SECRET.encode(), timestamp, request.body)
    assert request.headers["X-Idgate-Signature"] == expected
    document: dict[str, Any] = json.loads(request.body)
    assert document["event"] == "resync.completed"
    return document


def completed_event(runtime: Runtime, batch_id: str) -> AuditEvent:
    """The batch's "resync.completed" audit event, once the notice was sent."""

    def event() -> AuditEvent | None:
        return next(
            (e for e in audit(runtime.store, "resync.completed") if e.details["batch"] == batch_id),
            None,
        )

    found: AuditEvent = wait_until(event, 10, f"the resync.completed event of {batch_id}")
    return found


def check_summary(runtime: Runtime, view: ResyncView, summary: dict[str, Any]) -> None:
    """The summary names every job of the batch with the counts the store has for it."""
    jobs = {job.source_id: runtime.jobs.get(SUPER, job.id) for job in view.jobs}
    assert summary["batch"] == view.batch_id
    assert summary["requested_by"] == SUPER.name
    listed = {entry["source"]: entry for entry in summary["jobs"]}
    assert set(listed) == set(jobs)
    totals = dict.fromkeys(COUNTERS, 0)
    for source_id, job in jobs.items():
        entry = listed[source_id]
        assert (entry["job"], entry["state"], entry["error"]) == (job.id, job.state.value, None)
        assert entry["counts"] == job.counts.as_dict()
        for name, value in job.counts.as_dict().items():
            totals[name] += value
    assert summary["totals"] == totals
    started = min(job.started_at for job in jobs.values())
    ended = max(job.ended_at for job in jobs.values() if job.ended_at)
    assert datetime.fromisoformat(summary["started_at"]) == started
    assert datetime.fromisoformat(summary["ended_at"]) == ended


def test_resync_all_runs_every_source_and_posts_one_signed_summary(
    slapd, store_url, gateways, make_receiver
):
    receiver = make_receiver()
    runtime = gateways(resync_config(store_url, slapd, receiver.url))

    view = runtime.jobs.resync_all(SUPER)

    assert sorted(job.source_id for job in view.jobs) == sorted([SOURCE, "lab"])
    assert view.skipped == ()
    assert {job.batch_id for job in view.jobs} == {view.batch_id}
    wait_until(receiver.received, 60, "the completion notice")
    batch = runtime.jobs.batch(SUPER, view.batch_id)
    assert batch.done and all(job.state is JobState.SUCCEEDED for job in batch.jobs)
    corp = next(job for job in batch.jobs if job.source_id == SOURCE)
    assert corp.counts.added >= 3  # alice, dave, frank at least; bob and carol not
    assert corp.counts.not_synchronized >= 2
    lab = next(job for job in batch.jobs if job.source_id == "lab")
    assert lab.counts.added >= 1  # erin

    [request] = receiver.received()
    document = verified(request)
    assert document["summary"]["succeeded"] is True
    assert document["summary"]["skipped"] == []
    check_summary(runtime, view, document["summary"])
    event = completed_event(runtime, view.batch_id)
    assert event.actor == "system"
    assert event.details["summary"] == document["summary"]
    [delivery] = event.details["notice"]
    assert (delivery["channel"], delivery["delivered"], delivery["attempts"]) == (
        "webhook",
        True,
        1,
    )
    assert [e.details["batch"] for e in audit(runtime.store, "resync.started")] == [view.batch_id]
    assert len(receiver.received()) == 1  # one notice for the batch, not one per job
    ended = max(job.ended_at for job in batch.jobs if job.ended_at)
    assert document["summary"]["ended_at"] == ended.isoformat()  # ISO 8601, as started_at


def test_a_receiver_that_fails_first_still_gets_the_notice(
    slapd, store_url, gateways, make_receiver, clocked
):
    receiver = make_receiver([503])
    runtime = gateways(resync_config(store_url, slapd, receiver.url))
    assert runtime.config.notifications is not None
    notifier = Notifier(runtime.config.notifications, first_delay_seconds=0.01)
    jobs = clocked(runtime, notify=notifier_callable(notifier.send)).jobs

    view = jobs.resync_all(SUPER)

    wait_until(lambda: len(receiver.received()) >= 2, 60, "the retried notice")
    first, second = receiver.received()
    assert verified(first)["summary"] == verified(second)["summary"]  # each signed afresh
    check_summary(runtime, view, verified(second)["summary"])
    event = completed_event(runtime, view.batch_id)
    [delivery] = event.details["notice"]
    assert (delivery["delivered"], delivery["attempts"], delivery["error"]) == (True, 2, None)
    assert len(receiver.received()) == 2


def test_a_source_whose_job_runs_elsewhere_is_skipped_and_named(
    slapd, store_url, gateways, make_receiver
):
    receiver = make_receiver()
    runtime = gateways(resync_config(store_url, slapd, receiver.url))
    now = utcnow()
    with runtime.store.writing() as session:  # another process runs a job of corp
        assert job_queries.take_lease(
            session, "job:corp", "elsewhere", now, now + timedelta(minutes=5)
        )

    view = runtime.jobs.resync_all(SUPER)

    assert [job.source_id for job in view.jobs] == ["lab"]
    assert [source for source, _ in view.skipped] == [SOURCE]
    wait_until(receiver.received, 60, "the completion notice")
    summary = verified(receiver.received()[0])["summary"]
    assert summary["succeeded"] is False
    assert [entry["source"] for entry in summary["skipped"]] == [SOURCE]
    assert "running already" in summary["skipped"][0]["reason"]
    check_summary(runtime, view, summary)
    completed_event(runtime, view.batch_id)
    with runtime.store.writing() as session:  # and now one of lab too
        later = utcnow() + timedelta(minutes=5)
        assert job_queries.take_lease(session, "job:lab", "elsewhere", utcnow(), later)
    with pytest.raises(JobRunning):  # every source busy: nothing to resync
        runtime.jobs.resync_all(SUPER)
