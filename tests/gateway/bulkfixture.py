"""Helpers of the job tests (SPEC §5.3-§5.6): directories loaded offline, clocked job runners,
and the store's own view of jobs and users.

- `require_slapd()`, `loaded_slapd(count)`: a module-scoped directory of `count` bench users
  on top of the seed (fixtures of `tests/servers` are per test or per session);
- `load_people(server, count)`: slapadd users that carry mail, mobile and telephoneNumber,
  so a half-written record would show;
- `Clocked`: the jobs of a runtime on another clock (the works of `gateway.runtime.main.works`,
  rebuilt with a `tests.clock.Clock`), for refresh, cleanup and the scheduler;
- `job_row`, `user_rows`, `details_of`, `wait_until`: reading what the jobs left.
"""

import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from bench.users import BenchUser, generate, load
from gateway.engine.types import Role
from gateway.jobs.guard import ReleaseHolds
from gateway.jobs.service import JobKind, Jobs, JobView, Notify
from gateway.operations.admin import directory_ids
from gateway.runtime.main import Runtime, works
from gateway.users.service import Actor, Clock, UserService
from store.db import Store
from store.models import AuditEvent, SyncJob, SyncJobDetail, User
from tests.servers import seed
from tests.servers.fixtures import SKIP_REASON
from tests.servers.slapd import Slapd, SlapdError, SlapdNotInstalled, find_installation

SUPER = Actor("ops", Role.SUPER_ADMIN)
SOURCE = "corp"
#: The seed users under ou=people that a bulk run adds (bob is locked, carol expired).
SEED_ADDED = ("alice", "dave", "frank")
SEED_NOT_SYNCHRONIZED = {"bob": "disabled in the source", "carol": "expired in the source"}


def require_slapd() -> None:
    """Skip (a failure under IDGATE_REQUIRE_REAL_SERVERS=1) when slapd is not installed."""
    try:
        find_installation()
    except SlapdNotInstalled:
        pytest.skip(SKIP_REASON)


@contextmanager
def loaded_slapd(count: int) -> Iterator[tuple[Slapd, list[BenchUser]]]:
    """A seeded slapd with `count` bench users under ou=people, closed at the end."""
    require_slapd()
    with Slapd() as server:
        users = generate(count, server.people_dn)
        load(server, users)
        yield server, users


@dataclass(frozen=True)
class Person:
    """A user `load_people` put in a directory, with what its record must hold."""

    uid: str
    dn: str
    password: str
    mail: str
    mobile: str
    phone: str


def people(count: int, people_dn: str, prefix: str = "p") -> list[Person]:
    return [
        Person(
            uid=f"{prefix}-{n:05d}",
            dn=f"uid={prefix}-{n:05d},{people_dn}",
            password=f"{prefix}-{n:05d}-pw",
            mail=f"{prefix}-{n:05d}@{seed.MAIL_DOMAIN}",
            mobile=f"+1 202 555 {n % 10000:04d}",
            phone=f"+1 303 555 {n % 10000:04d}",
        )
        for n in range(1, count + 1)
    ]


def load_people(server: Slapd, persons: Sequence[Person]) -> None:
    """slapadd `persons` into a started server (as `bench.users.load`, with phones)."""
    ldif = server.workdir / "people.ldif"
    ldif.write_text(
        "\n".join(
            seed.render_entry(
                [
                    ("dn", p.dn),
                    ("objectClass", "inetOrgPerson"),
                    ("uid", p.uid),
                    ("cn", f"Person {p.uid}"),
                    ("sn", "Person"),
                    ("mail", p.mail),
                    ("mobile", p.mobile),
                    ("telephoneNumber", p.phone),
                    ("userPassword", seed.ssha(p.password)),
                ]
            )
            for p in persons
        )
    )
    server.stop()
    command = [
        str(find_installation().slapadd),
        "-q",
        "-F", str(server.workdir / "config"),
        "-b", server.suffix,
        "-l", str(ldif),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise SlapdError(f"slapadd failed:\n{done.stderr.strip()}")
    server.start()


# -- jobs on an injected clock ---------------------------------------------------------------


class Clocked:
    """A runtime's store, config and directories, with a UserService and Jobs on `clock`.

    The works are those `gateway.runtime.main` wires (BulkSync, Refresh, Cleanup), built with the
    same clock, so leases, sync times and cleanup ages all follow it. Close it (the test's
    `closing` list does) before the runtime.
    """

    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        *,
        owner: str | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.store = runtime.store
        config = runtime.config
        self.users = UserService(clock=clock)
        self.jobs = Jobs(
            runtime.store,
            works(config, runtime.store, self.users, runtime.directories, clock=clock),
            directory_sources=lambda: directory_ids(config),
            clock=clock,
            lease_seconds=config.sync.job_lease_seconds,
            details_limit=config.sync.details_limit,
            owner=owner,
            notify=notify,
            releases=lambda read_before: ReleaseHolds(self.users, runtime.store, read_before),
        )

    def run(self, kind: JobKind, source_id: str | None = SOURCE, timeout: float = 60) -> JobView:
        """Start a job and wait for its end."""
        started = self.jobs.start(SUPER, kind, source_id if kind is not JobKind.CLEANUP else None)
        return wait_job(self.jobs, started.id, timeout)

    def close(self) -> None:
        self.jobs.close()


def notifier_callable(send: Callable[[str, Mapping[str, Any]], Sequence[Any]]) -> Notify:
    """What `gateway.runtime.wiring._notify` hands Jobs: deliveries as plain dicts (JSON)."""

    def notify(event: str, summary: Mapping[str, Any]) -> Any:
        return [dataclasses.asdict(d) for d in send(event, summary)]

    return notify


# -- reading the store -----------------------------------------------------------------------


def wait_job(jobs: Jobs, job_id: int, timeout: float = 60) -> JobView:
    view = jobs.wait(job_id, timeout)
    assert view.done, f"job {job_id} still {view.state} after {timeout} s: {view.counts}"
    return view


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def job_row(store: Store, job_id: int) -> SyncJob:
    with store.reading() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None, f"no job {job_id}"
        return job


def job_rows(store: Store) -> list[SyncJob]:
    with store.reading() as session:
        return list(session.scalars(select(SyncJob).order_by(SyncJob.id)))


def counts_of(view: JobView) -> dict[str, int]:
    return view.counts.as_dict()


def details_of(store: Store, job_id: int, category: str) -> list[tuple[str, str]]:
    """(user_name, reason) of a job's details list, straight from the store."""
    with store.reading() as session:
        rows = session.scalars(
            select(SyncJobDetail)
            .where(SyncJobDetail.job_id == job_id, SyncJobDetail.category == category)
            .order_by(SyncJobDetail.id)
        )
        return [(row.user_name, row.reason) for row in rows]


def detail_count(store: Store, job_id: int) -> int:
    with store.reading() as session:
        return session.scalar(
            select(func.count()).select_from(SyncJobDetail).where(SyncJobDetail.job_id == job_id)
        )


def user_rows(store: Store, source_id: str = SOURCE) -> dict[str, User]:
    """Every record of a source by user name, phones loaded."""
    with store.reading() as session:
        users = session.scalars(
            select(User).where(User.source_id == source_id).options(selectinload(User.phones))
        ).all()
        return {user.user_name: user for user in users}


def count_users(store: Store, source_id: str = SOURCE) -> int:
    with store.reading() as session:
        return session.scalar(select(func.count()).where(User.source_id == source_id)) or 0


def set_user_times(store: Store, times: Mapping[str, Mapping[str, datetime | None]]) -> None:
    """Set gateway-owned timestamps (last_auth_at, created_at, ...) by user name."""
    with store.writing() as session:
        for user_name, values in times.items():
            session.execute(
                update(User)
                .where(User.source_id == SOURCE, User.user_name == user_name)
                .values(**values)
            )


def audit(store: Store, action: str) -> list[AuditEvent]:
    with store.reading() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
