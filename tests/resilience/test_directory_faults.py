"""Directory faults under load, through the real LDAP front (SPEC §2 failover, §5.1, §6).

Each scenario runs a real `idgate serve` (GatewayProcess: LDAP front, SQLite) in front of real
slapd servers, with python-ldap clients binding the way RADIUS servers do (one long-lived
connection each, re-bound for every request). Faults are done to the slapd processes
themselves: SIGKILL, SIGTERM, SIGSTOP/SIGCONT, and a TLS certificate the gateway must refuse.

These run on SQLite only: what they exercise is the directory connector (failover, timeouts,
TLS) and the JIT read's deadline, which do not depend on the store backend; the store-level
claim and row-lock logic they rely on runs on both backends in
tests/gateway/auth/test_jit_processes.py and tests/store. The runtime-level versions of some of
these (tests/gateway/auth/test_auth_slapd.py: failover, no server answers, a silent server)
check one bind at a time; here the binds are concurrent, the gateway is a separate process and
the servers die while answering.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from store.models import User
from tests.gateway.bulkfixture import wait_until
from tests.gateway.realgw import slapd_source
from tests.ldapproxy.clients import add_person, store_of, stored_user, stored_users
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.resilience.faults_support import (
    SUCCESS,
    UNAVAILABLE,
    BindLoop,
    Replicated,
    add_replicated,
    bind_code,
    serving,
    table_rows,
)
from tests.servers.slapd import Slapd
from tests.servers.tls import make_tls_files

# One worker runs the whole module: its servers are module-scoped (pytest-xdist loadgroup).
pytestmark = [pytest.mark.slapd, pytest.mark.xdist_group("directory_faults")]

CLIENTS = 8


@pytest.fixture
def replicas(slapd_factory: Callable[..., Slapd]) -> tuple[Slapd, Slapd]:
    """A primary and a secondary holding the same users (same entryUUIDs), no seed users."""
    return slapd_factory(seed_users=False), slapd_factory(seed_users=False)


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGTERM"])
def test_the_primary_dies_under_load_and_every_later_bind_goes_to_the_secondary(
    replicas: tuple[Slapd, Slapd], fault: str
) -> None:
    """SPEC §2: servers are tried in order and the next is used when one is unreachable.

    Eight clients bind continuously (JIT interval 0: every bind also reads the user); the
    primary is killed (SIGKILL) or stopped (SIGTERM: slapd closes its connections) while they
    do. At most the binds in flight at that moment fail, each with `unavailable` (52), never
    `invalidCredentials`; every bind sent afterwards succeeds, and slapd's own logs show the
    secondary did that work (binds and JIT reads), not the dead primary. No record changed.
    """
    primary, secondary = replicas
    members = [add_replicated(replicas, f"radius-{n}") for n in range(CLIENTS)]
    gateway = GatewayProcess([slapd_source([primary.url, secondary.url])], jit_interval_seconds=0)
    with serving(gateway):
        loops = [BindLoop(gateway.url, m.uid, m.password).start() for m in members]
        try:
            warm = time.monotonic()
            wait_until(
                lambda: all(loop.successes_since(warm) >= 3 for loop in loops), 30, "warm-up"
            )
            before = records_by_uid(gateway)
            secondary_binds = {m.uid: secondary.count_binds(m.dn) for m in members}
            assert set(secondary_binds.values()) == {0}, "the secondary served before the fault"

            fault_at = time.monotonic()
            if fault == "SIGKILL":
                primary.kill()
            else:
                primary.stop()
            done_at = time.monotonic()
            wait_until(
                lambda: all(loop.successes_since(done_at) >= 5 for loop in loops),
                30,
                "binds after it",
            )
        finally:
            attempts = {loop.name: loop.stop() for loop in loops}

        for member in members:
            tries = attempts[member.uid]
            failed = [a for a in tries if a.code != SUCCESS]
            # Only a bind that was on its way when the primary went may fail, and only once.
            assert len(failed) <= 1, (member.uid, failed)
            for attempt in failed:
                assert attempt.code == UNAVAILABLE, attempt
                assert attempt.started <= done_at and attempt.ended >= fault_at, attempt
            later = [a for a in tries if a.started > done_at]
            assert later and all(a.code == SUCCESS for a in later), member.uid
            # Every later bind was verified at the secondary; so may those under way while the
            # primary went (a pooled connection it dropped is retried once, on the next server).
            since_fault = [a for a in tries if a.ended >= fault_at]
            served = secondary.count_binds(member.dn)
            assert len(later) <= served <= len(since_fault), (member.uid, served, len(later))
            # ...and read there: a read may land after its bind was answered (past its JIT
            # deadline, on a busy machine), so slapd's log is given time to show it.
            wait_until(
                partial(reads_at, secondary, member, len(later)),
                10,
                f"the JIT reads of {member.uid} at the secondary",
            )
        assert records_by_uid(gateway) == before


def test_the_primary_dies_while_the_pools_are_idle_and_the_next_binds_succeed(
    replicas: tuple[Slapd, Slapd],
) -> None:
    """SPEC §2 failover, at the quietest moment: the gateway's pooled connections (several per
    pool, opened by concurrent binds) all sit idle on the primary when it is killed, so each
    is dead. The next bind's JIT read and password check each find a dead connection, and
    the retry must open a new one (on the secondary) rather than take the next dead sibling:
    every bind succeeds, none is `unavailable`.
    """
    primary, secondary = replicas
    members = [add_replicated(replicas, f"idle-{n}") for n in range(4)]
    gateway = GatewayProcess([slapd_source([primary.url, secondary.url])], jit_interval_seconds=0)
    with serving(gateway):
        connections = primary.count_connections()
        with ThreadPoolExecutor(len(members)) as pool:
            for _ in range(3):  # concurrent binds: several connections in each pool
                codes = pool.map(lambda m: bind_code(gateway.url, m.uid, m.password)[0], members)
                assert list(codes) == [SUCCESS] * len(members)
        # A service and a bind pool, more than one connection in at least one of them.
        assert primary.count_connections() - connections > 2

        primary.kill()

        for member in members:
            assert bind_code(gateway.url, member.uid, member.password)[0] == SUCCESS
            assert secondary.count_binds(member.dn) == 1


def reads_at(server: Slapd, member: Replicated, at_least: int) -> bool:
    """Whether `server` has logged at least `at_least` JIT reads of `member` (by entryUUID)."""
    return server.count_operations("SRCH", contains=f"(entryUUID={member.entry_uuid})") >= at_least


def records_by_uid(gateway: GatewayProcess) -> dict[str, tuple[object, ...]]:
    """What must not move when a server fails: identity, status and its reason."""
    return {
        view.user_name: (view.id, view.external_id, view.state)
        for view in stored_users(gateway, "corp")
    }


STORE_TABLES = ("users", "phone_numbers", "audit_events")


def test_with_every_server_down_binds_are_unavailable_and_the_store_does_not_move(
    replicas: tuple[Slapd, Slapd],
) -> None:
    """SPEC §2 ("at least one must answer or the operation fails with a clear error"), §4.2
    (a read that failed: "no change at all"), §6 (a refusal says "directory unavailable").

    Both servers are killed. Concurrent binds of known users, a wrong password and a user the
    gateway never saw all get `unavailable` (52) quickly; the records, their phones and the
    audit log are byte for byte what they were (status, last_sync_at, claims: every column).
    The secondary comes back: the very next binds succeed through it, in the same process.
    """
    primary, secondary = replicas
    members = [add_replicated(replicas, f"outage-{n}") for n in range(4)]
    newcomer = add_replicated(replicas, "outage-new")
    gateway = GatewayProcess([slapd_source([primary.url, secondary.url])], jit_interval_seconds=0)
    with serving(gateway):
        for member in members:
            assert bind_code(gateway.url, member.uid, member.password)[0] == SUCCESS
        # last_auth_at is written by a background flush: wait for it, so `before` is final.
        wait_until(
            lambda: sum(1 for v in stored_users(gateway, "corp") if v.last_auth_at) == 4,
            15,
            "last_auth_at of the four binds",
        )
        before = {table: table_rows(gateway.store_url, table) for table in STORE_TABLES}
        pid = gateway.pid

        primary.kill()
        secondary.kill()
        attempts = [(m.uid, m.password) for m in members] * 2
        attempts += [(members[0].uid, "not-the-password"), (newcomer.uid, newcomer.password)]
        with ThreadPoolExecutor(len(attempts)) as pool:
            answers = list(pool.map(lambda a: bind_code(gateway.url, *a), attempts))

        assert [code for code, _ in answers] == [UNAVAILABLE] * len(attempts)
        # Refused connections fail at once: nobody waits for a timeout.
        assert max(took for _, took in answers) < 5, answers
        assert {t: table_rows(gateway.store_url, t) for t in STORE_TABLES} == before

        secondary.start()  # same address; the primary stays down
        for person in [*members, newcomer]:
            assert bind_code(gateway.url, person.uid, person.password)[0] == SUCCESS
            assert secondary.count_binds(person.dn) == 1
        assert gateway.pid == pid
        views = {v.user_name: v for v in stored_users(gateway, "corp")}
        assert views[newcomer.uid].external_id == newcomer.entry_uuid
        assert all(v.state.active for v in views.values())


def age_last_sync(gateway: GatewayProcess, user_name: str, by: timedelta) -> datetime:
    """Move a record's last sync back by `by` (its JIT window then has passed)."""
    view = stored_user(gateway, "corp", user_name)
    assert view is not None and view.last_sync_at is not None
    aged = view.last_sync_at - by
    with store_of(gateway) as store, store.writing() as session:
        session.execute(update(User).where(User.id == view.id).values(last_sync_at=aged))
    return aged


def deadline_warnings(gateway: GatewayProcess) -> list[dict[str, object]]:
    return [r for r in gateway.log_records() if "passed its deadline" in str(r.get("message", ""))]


def test_a_hung_directory_fails_the_read_at_its_deadline_and_the_cached_record_decides(
    slapd_factory: Callable[..., Slapd],
) -> None:
    """SPEC §5.1: "The read has a deadline. When it passes, the gateway decides from the cached
    record and the sync counts as failed"; "A failed or timed-out read does not start the
    window: the next attempt retries at once".

    slapd is frozen with SIGSTOP: the kernel still completes TCP handshakes and buffers
    requests, nothing answers (pooled connections hang mid-operation, unlike a refused port).
    The user's JIT window (300 s) has passed, so each bind reads them upstream.

    1. Frozen throughout: the read gives up at the JIT deadline (0.5 s), the password check at
       the operation timeout (2 s): the bind is `unavailable` (52) after ~2 s, never hung.
    2. Thawed (SIGCONT) once the read has passed its deadline: the password check is answered,
       and the bind succeeds on the cached, active record; the late read is dropped, so the
       record's last sync does not move (the sync failed).
    3. The next bind reads the user again at once (SRCH at slapd), and that read, which
       succeeds, starts the window: one more bind does not read.
    """
    server = slapd_factory(seed_users=False)
    person = add_replicated([server], "frozen")
    deadline, operation_timeout = 0.5, 2
    source = slapd_source([server.url], operation_timeout_seconds=operation_timeout)
    gateway = GatewayProcess(
        [source], jit_interval_seconds=300, sync={"jit_deadline_seconds": deadline}
    )
    reads_of = f"(entryUUID={person.entry_uuid})"
    assert server.pid is not None
    with serving(gateway):
        # The first bind adds the user (retried: its read, too, has the short deadline).
        wait_until(
            lambda: bind_code(gateway.url, person.uid, person.password)[0] == SUCCESS,
            20,
            "a first bind",
        )
        aged = age_last_sync(gateway, person.uid, timedelta(minutes=10))
        # last_auth_at comes with a background flush: wait for it, so `cached` is final.
        cached = wait_until(
            lambda: (
                (view := stored_user(gateway, "corp", person.uid)) and view.last_auth_at and view
            ),
            15,
            "the first bind's last_auth_at",
        )

        # 1. Frozen throughout.
        warned = len(deadline_warnings(gateway))
        os.kill(server.pid, signal.SIGSTOP)
        try:
            code, took = bind_code(gateway.url, person.uid, person.password)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert code == UNAVAILABLE
        assert operation_timeout - 0.1 < took < operation_timeout + 3, took
        assert len(deadline_warnings(gateway)) == warned + 1
        assert stored_user(gateway, "corp", person.uid) == cached

        # 2. Frozen until the read has given up, then thawed.
        warned += 1
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(1) as pool:
                sent = datetime.now(UTC)
                pending = pool.submit(bind_code, gateway.url, person.uid, person.password)
                wait_until(lambda: len(deadline_warnings(gateway)) > warned, 10, "the deadline")
                os.kill(server.pid, signal.SIGCONT)
                code, took = pending.result()
        finally:
            os.kill(server.pid, signal.SIGCONT)
        gave_up = datetime.fromisoformat(str(deadline_warnings(gateway)[-1]["time"]))
        assert deadline <= (gave_up - sent).total_seconds() < deadline + 1.5
        assert code == SUCCESS
        assert took < operation_timeout, took  # answered once slapd was thawed
        after = stored_user(gateway, "corp", person.uid)
        assert after is not None and after.last_sync_at == aged  # the sync failed
        assert after.state == cached.state and after.version == cached.version

        # 3. The window did not start: the next bind reads; after that read, one does not.
        reads = server.count_operations("SRCH", contains=reads_of)
        assert bind_code(gateway.url, person.uid, person.password)[0] == SUCCESS
        assert server.count_operations("SRCH", contains=reads_of) > reads
        synced = stored_user(gateway, "corp", person.uid)
        assert synced is not None and synced.last_sync_at is not None
        assert synced.last_sync_at > aged + timedelta(minutes=9)
        reads = server.count_operations("SRCH", contains=reads_of)
        assert bind_code(gateway.url, person.uid, person.password)[0] == SUCCESS
        assert server.count_operations("SRCH", contains=reads_of) == reads


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing slapd_tls presents."""
    return make_tls_files(tmp_path_factory.mktemp("foreign-ca")).ca_file


TLS_FAULTS = {
    # ldaps://, trusted chain, but the certificate names localhost/127.0.0.1 only.
    "wrong-name-ldaps": ("ldaps", "TLS certificate names another host"),
    # StartTLS, a chain the configured CA did not sign.
    "untrusted-starttls": ("starttls", "TLS certificate not trusted"),
}


def tls_source(server: Slapd, transport: str, ca_file: Path, **extra: object) -> dict[str, Any]:
    urls = [server.ldaps_url] if transport == "ldaps" else [server.url]
    start_tls = {"start_tls": True} if transport == "starttls" else {}
    return slapd_source(urls, ca_file=str(ca_file), **start_tls, **extra)


@pytest.mark.parametrize("fault", sorted(TLS_FAULTS))
def test_a_certificate_that_does_not_verify_refuses_binds_with_one_clear_log_line(
    slapd_tls: Slapd, foreign_ca: Path, fault: str
) -> None:
    """SPEC §2: upstream connections verify TLS certificates (CA file, expected host names).

    A source whose server certificate does not verify (a name it does not carry, or a CA that
    did not sign it) never talks to the directory in clear: binds are `unavailable` (52), and
    the log says so once, naming the failure and the server, however many binds fail; no
    password appears anywhere in the log.
    """
    transport, failure = TLS_FAULTS[fault]
    person = add_person(slapd_tls, "tls")
    if fault == "wrong-name-ldaps":
        source = tls_source(
            slapd_tls, transport, slapd_tls.ca_file, tls_server_names=["ldap.example.org"]
        )
        url = slapd_tls.ldaps_url
    else:
        source = tls_source(slapd_tls, transport, foreign_ca)
        url = slapd_tls.url
    binds = slapd_tls.count_binds(person.dn)
    with serving(GatewayProcess([source])) as gateway:
        codes = [bind_code(gateway.url, person.uid, person.password)[0] for _ in range(3)]
        records = gateway.log_records()
        log_text = gateway.log_text()

    assert codes == [UNAVAILABLE] * 3
    assert slapd_tls.count_binds(person.dn) == binds  # the password never left the gateway
    clear = [
        r
        for r in records
        if r["level"] == "error" and failure in r["message"] and url in r["message"]
    ]
    assert len(clear) == 1, [r["message"] for r in records]
    assert person.password not in log_text
    assert slapd_tls.service_password not in log_text


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_the_right_certificate_settings_bind(slapd_tls: Slapd, transport: str) -> None:
    """The control case of the test above: the source's CA and the URL's host verify."""
    person = add_person(slapd_tls, "tls-ok")
    source = tls_source(slapd_tls, transport, slapd_tls.ca_file)
    with serving(GatewayProcess([source])) as gateway:
        assert bind_code(gateway.url, person.uid, person.password)[0] == SUCCESS
        records = gateway.log_records()
    assert slapd_tls.count_binds(person.dn) == 1
    assert not [r for r in records if r["level"] == "error"]
