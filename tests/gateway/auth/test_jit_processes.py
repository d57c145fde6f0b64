"""SPEC §5.1 across processes: 200 simultaneous binds of one user, from four gateway processes
sharing one store, cause exactly one upstream read — counted at slapd itself, not in idgate.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.config import parse_config
from gateway.runtime.main import build
from store.db import Store
from store.models import User
from tests.reactor import blocking

ROOT = Path(__file__).resolve().parents[3]
PROCESSES, THREADS = 4, 50


def config(slapd, store_url: str) -> dict:
    return {
        "store": {"url": store_url, "pool_size": 5},
        "sync": {"jit_deadline_seconds": 10},
        "sources": [
            {
                "id": "corp",
                "kind": "ldap",
                "urls": [slapd.url],
                "bind_dn": slapd.service_dn,
                "bind_password": slapd.service_password,
                "roots": [slapd.people_dn],
                "pool_size": 4,
            }
        ],
    }


def burst(cfg: dict, name: str, password: str) -> dict[str, int]:
    barrier = Path(tempfile.mkdtemp(prefix="idgate-burst-"))  # the workers meet there
    args = [json.dumps(cfg), name, password, str(THREADS), str(barrier), str(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.jit_worker", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    totals: dict[str, int] = {}
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            for reason, count in json.loads(out.strip().splitlines()[-1])["reasons"].items():
                totals[reason] = totals.get(reason, 0) + count
    finally:
        shutil.rmtree(barrier, ignore_errors=True)
    return totals


@pytest.mark.timeout(300)
def test_a_burst_of_binds_of_a_due_user_reads_once(slapd, store_url):
    uid = f"burst-{uuid.uuid4().hex[:8]}"
    slapd.add_user(uid, userPassword="burst-pw")
    cfg = config(slapd, store_url)
    runtime = build(parse_config(cfg, {}), migrate=True)
    try:
        assert blocking(runtime.authenticator.authenticate, uid, "burst-pw").ok  # the record exists
    finally:
        runtime.close()
    # Age the record's last sync past the window, so every bind below is due for a read.
    store = Store.connect(store_url)
    try:
        with store.writing() as session:
            aged = datetime.now(UTC) - timedelta(minutes=10)
            session.execute(update(User).values(last_sync_at=aged))
        with store.reading() as session:
            external_id = session.scalar(select(User.external_id))
    finally:
        store.close()
    reads_before = slapd.count_operations("SRCH", contains=external_id)

    totals = burst(cfg, uid, "burst-pw")

    assert totals == {"success": PROCESSES * THREADS}
    assert slapd.count_operations("SRCH", contains=external_id) - reads_before == 1


@pytest.mark.timeout(300)
def test_a_burst_of_first_binds_of_a_new_user_reads_once(slapd, store_url):
    uid = f"fresh-{uuid.uuid4().hex[:8]}"
    slapd.add_user(uid, userPassword="fresh-pw")
    cfg = config(slapd, store_url)
    build(parse_config(cfg, {}), migrate=True).close()  # schema and source row only
    searches_before = slapd.count_operations("SRCH", contains=f"(uid={uid})")

    totals = burst(cfg, uid, "fresh-pw")

    assert totals == {"success": PROCESSES * THREADS}
    assert slapd.count_operations("SRCH", contains=f"(uid={uid})") - searches_before == 1
