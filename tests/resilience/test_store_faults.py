"""The store fails under a running gateway: PostgreSQL restarted, SQLite locked by another
process, the disk full. Real `idgate serve` processes (both fronts), real slapd, real clients.

What every scenario proves (SPEC §1 "a production gateway", §8; STYLE habit 5):
- the gateway process survives and recovers by itself, with no restart;
- while the store cannot serve, clients get a clean protocol error that says "try again":
  SCIM 503 Service Unavailable (507 Insufficient Storage for a full disk) with a SCIM Error
  body (RFC 7644 §3.12), never a 500; LDAP `unavailable` (52) — RFC 4511 §4.1.9: "a subsystem
  necessary to complete the operation is offline" — or `busy` (51) for a lock held past the
  busy timeout ("too busy to service the operation"), never `other` (80, which says nothing a
  client can act on) and never a dropped connection;
- what the gateway acknowledged is stored, and what it refused left nothing half-written.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.realgw import slapd_source
from tests.ldapproxy.gateway_process import IDGATE, clean_environment, to_toml
from tests.resilience.pgserver import PgCluster, unavailable
from tests.resilience.store_support import (
    ERROR_SCHEMA,
    Answer,
    Load,
    bind_once,
    patch_active,
    scim_user,
    stored_active,
)
from tests.resilience.support import FullGateway, scim_client, scim_source
from tests.servers.slapd import Slapd

pytestmark = pytest.mark.slapd

TOKEN = "store-faults-scim-token-0123456789"
SCIM = "hr"
PASSWORD = "store-faults-pw"
#: How soon after the store is back every client must be served again.
RECOVERY_SECONDS = 5.0


def directory_users(slapd: Slapd, count: int) -> list[tuple[str, str]]:
    """`count` new slapd users, as (DN, password) for binds."""
    tag = uuid.uuid4().hex[:6]
    return [
        (slapd.add_user(f"sf-{tag}-{i}", userPassword=PASSWORD), PASSWORD) for i in range(count)
    ]


def scim_users(gateway: FullGateway, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    with scim_client(gateway, SCIM, TOKEN) as client:
        return [scim_user(client, f"sf-{tag}-{i}", active=True)["id"] for i in range(count)]


def sources(slapd: Slapd) -> list[dict]:
    return [slapd_source([slapd.url]), scim_source(SCIM, TOKEN)]


def ok(answer: Answer) -> bool:
    return answer.code in (0, 200)


def failed(answer: Answer) -> bool:
    return not ok(answer)


def assert_clean_refusals(answers: list[Answer], *, ldap: set[int], scim: set[int]) -> None:
    """Every refusal is one of the expected protocol errors; SCIM ones carry an Error body."""
    for answer in answers:
        if ok(answer):
            continue
        if answer.worker.startswith("uid="):
            assert answer.code in ldap, answer
        else:
            assert answer.code in scim, answer
            body = answer.body
            assert isinstance(body, dict) and body.get("schemas") == [ERROR_SCHEMA], answer
            assert body.get("status") == str(answer.code), answer
            assert "Traceback" not in str(body) and "sqlalchemy" not in str(body).lower()


# -- PostgreSQL restarted under load ---------------------------------------------------------


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL cluster: {reason}")
    with PgCluster() as cluster:
        yield cluster


def test_postgresql_restarted_under_load(slapd, pg_cluster):
    """PostgreSQL backend, on a private cluster (the test stops the server; the machine's is
    shared): a fast shutdown cuts every pooled connection mid-load, then the server starts
    again. Binds (JIT interval 0: each one writes its sync) and SCIM PATCHes of `active` go on
    throughout. Proves: clean 52 / 503 during the outage, service back within
    RECOVERY_SECONDS with the same gateway process, and every acknowledged status change
    stored (no lost write)."""
    gateway = FullGateway(
        sources(slapd), store_url=pg_cluster.url, sync={"jit_interval_seconds": 0}
    )
    with gateway:
        pid = gateway.pid
        load = Load(
            gateway.port,
            directory_users(slapd, 4),
            lambda: scim_client(gateway, SCIM, TOKEN),
            scim_users(gateway, 4),
        )
        load.start()
        try:
            began = time.monotonic()
            assert load.wait(ok, began, 30), "the load never got going"
            down = time.monotonic()
            pg_cluster.stop()
            assert load.wait(failed, down, 60), "some client never noticed the outage (60 s)"
            pg_cluster.start()
            up = time.monotonic()
            assert load.wait(ok, up, 30), "some client was not served again"
        finally:
            load.stop()
        late = {w: load.first(w, ok, up) - up for w in load.workers()}
        assert max(late.values()) < RECOVERY_SECONDS, late
        assert gateway.running and gateway.pid == pid  # it reconnected by itself
        assert_clean_refusals(load.answers, ldap={52}, scim={503})
        assert stored_active(pg_cluster.url, list(load.acknowledged)) == load.acknowledged


# -- SQLite locked by another process --------------------------------------------------------


def hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    """Another process's writer (here another connection): BEGIN IMMEDIATE, then wait."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)  # the lock is held for exactly this long: the scenario's subject
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_sqlite_locked_by_another_writer(slapd):
    """SQLite backend (the lock is SQLite's; PostgreSQL has row locks and no busy timeout).
    A second connection holds the database's write lock while binds (JIT writes) and SCIM
    writes arrive. Held for 2 s, under the 10 s busy timeout (store.db): every request waits
    and succeeds. Held past the busy timeout: each gets a clean, specific refusal (LDAP busy
    51, SCIM 503), nothing is half-written, and all of it succeeds once the lock is gone."""
    from store.db import SQLITE_BUSY_TIMEOUT_MS

    busy_timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
    gateway = FullGateway(sources(slapd), sync={"jit_interval_seconds": 0})
    with gateway:
        binders = directory_users(slapd, 3)
        patched = scim_users(gateway, 3)
        tag = uuid.uuid4().hex[:6]

        def clients(round_: str) -> list[Answer]:
            answers: list[Answer] = []
            lock = threading.Lock()

            def bind(dn: str, password: str) -> None:
                code = bind_once(gateway.port, dn, password)
                with lock:
                    answers.append(Answer(time.monotonic(), dn, code))

            def patch(user_id: str) -> None:
                with scim_client(gateway, SCIM, TOKEN) as client:
                    response = patch_active(client, user_id, False)
                with lock:
                    answers.append(Answer(time.monotonic(), user_id, response.status_code,
                                          response.json()))  # fmt: skip

            def create() -> None:
                with scim_client(gateway, SCIM, TOKEN) as client:
                    response = client.post("/Users", json={
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": f"sf-new-{tag}-{round_}",
                    })  # fmt: skip
                code = 200 if response.status_code == 201 else response.status_code
                with lock:
                    answers.append(Answer(time.monotonic(), "create", code, response.json()))

            threads = [threading.Thread(target=bind, args=b) for b in binders]
            threads += [threading.Thread(target=patch, args=(p,)) for p in patched]
            threads.append(threading.Thread(target=create))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            return answers

        def locked(seconds: float, round_: str) -> tuple[float, list[Answer]]:
            taken = threading.Event()
            holder = threading.Thread(
                target=hold_write_lock, args=(gateway.store_path, seconds, taken)
            )
            holder.start()
            assert taken.wait(10)
            started = time.monotonic()
            answers = clients(round_)
            holder.join(60)
            return started, answers

        # Shorter than the busy timeout: they wait for the lock, and nobody sees an error.
        started, answers = locked(2.0, "short")
        assert [a for a in answers if failed(a)] == []
        assert all(a.at - started >= 1.5 for a in answers)  # they did wait for the lock
        assert stored_active(gateway.store_url, patched) == dict.fromkeys(patched, False)

        # Longer than the busy timeout: a clean refusal each, and nothing written.
        with scim_client(gateway, SCIM, TOKEN) as client:
            for user_id in patched:
                assert patch_active(client, user_id, True).status_code == 200
        started, answers = locked(busy_timeout + 1.5, "long")
        assert len(answers) == 7 and all(failed(a) for a in answers), answers
        assert_clean_refusals(answers, ldap={51}, scim={503})
        assert stored_active(gateway.store_url, patched) == dict.fromkeys(patched, True)
        with scim_client(gateway, SCIM, TOKEN) as client:
            found = client.get("/Users", params={"filter": f'userName eq "sf-new-{tag}-long"'})
            assert found.json()["totalResults"] == 0  # the refused create left no user

        # Released: the same requests succeed.
        again = clients("long")
        assert [a for a in again if failed(a)] == []
        assert stored_active(gateway.store_url, patched) == dict.fromkeys(patched, False)
        assert gateway.running


# -- the disk full ------------------------------------------------------------------------


class TmpfsGateway(FullGateway):
    """A FullGateway whose SQLite store lives on a tiny tmpfs in a private mount namespace
    (`unshare -m`): the machine's mounts are untouched, and the tmpfs goes with the process.
    The schema is written inside the namespace, then `idgate serve` is exec'd there."""

    MOUNT_SIZE = "4m"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mount = Path()

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.mount / 'idgate.db'}"

    def start(self) -> None:
        import tempfile

        self._workdir = Path(tempfile.mkdtemp(prefix="idgate-tmpfs-", dir=self._base_dir))
        self._close_at_exit()
        self.mount = self.workdir / "store"
        self.mount.mkdir()
        self.config_path.write_text(to_toml(self.document()))  # ports 0: the gateway chooses
        config = str(self.config_path)
        script = (
            f'mount -t tmpfs -o size={self.MOUNT_SIZE} idgate-test-store "{self.mount}" && '
            f'"{IDGATE}" db upgrade --config "{config}" && '
            f'exec "{IDGATE}" serve --config "{config}" --log-format json --log-level info'
            f' --ready-file "{self.ready_path}"'
        )
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        self._launch(command, log_dir=self.workdir, env=clean_environment())

    def inside(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the gateway's mount namespace (where the tmpfs is)."""
        command = ["nsenter", "-t", str(self.pid), "-m", "--", "sh", "-c", script]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_disk_full_under_sqlite(slapd):
    """SQLite backend on a 4 MiB tmpfs in a private mount namespace (a full disk is a file
    system's state; PostgreSQL's own disk is the shared server's). The disk is filled:
    SCIM creates and PATCHes get 507 with a SCIM Error body (nothing half-written), reads
    keep working, and binds of known users inside their JIT window keep working — their path
    reads the store only (last_auth_at is written later in batches, retried), which is what
    a RADIUS server needs during the outage. Space freed: writes succeed again."""
    if os.geteuid() != 0:
        pytest.skip("a private tmpfs mount needs root (unshare -m)")
    gateway = TmpfsGateway(sources(slapd), sync={"jit_interval_seconds": 300})
    with gateway:
        ((dn, password),) = directory_users(slapd, 1)
        assert bind_once(gateway.port, dn, password) == 0  # known now, inside its window
        patched = scim_users(gateway, 2)
        fill = gateway.inside(f'cat /dev/zero > "{gateway.mount}/fill"; df -k "{gateway.mount}"')
        assert "No space left" in fill.stderr, fill
        tag = uuid.uuid4().hex[:6]
        refused: list[tuple[str, object]] = []
        with scim_client(gateway, SCIM, TOKEN) as client:
            # The WAL reuses space it already has: writes go on until they need a new page.
            for i in range(200):
                body = {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"sf-full-{tag}-{i}",
                    "displayName": "x" * 250,
                }
                response = client.post("/Users", json=body)
                if response.status_code != 201:
                    refused.append((body["userName"], response))
                    break
            assert refused, "the store never ran out of space"
            name, response = refused[0]
            assert response.status_code == 507, response.text
            error = response.json()
            assert error["schemas"] == [ERROR_SCHEMA] and error["status"] == "507"
            found = client.get("/Users", params={"filter": f'userName eq "{name}"'})
            assert found.status_code == 200 and found.json()["totalResults"] == 0
            patch = patch_active(client, patched[0], False)
            assert patch.status_code == 507, patch.text
            assert client.get(f"/Users/{patched[0]}").json()["active"] is True  # reads work
            assert bind_once(gateway.port, dn, password) == 0

            gateway.inside(f'rm -f "{gateway.mount}/fill"')
            assert client.post("/Users", json=body).status_code == 201
            assert patch_active(client, patched[0], False).status_code == 200
        assert stored_active_inside(gateway, patched[0]) is False
        assert gateway.running


def stored_active_inside(gateway: TmpfsGateway, user_id: str) -> bool:
    """The store file is only visible in the gateway's namespace: ask its SCIM front."""
    with scim_client(gateway, SCIM, TOKEN) as client:
        return bool(client.get(f"/Users/{user_id}").json()["active"])
