"""What the directory-fault and process-fault scenarios share (test_directory_faults.py,
test_process_faults.py).

- `add_replicated(servers, uid)`: one user on several slapd servers with the same entryUUID,
  as replicas carry it (syncrepl copies entryUUID; two independent slapds would give each
  entry its own, and the gateway keys users by it, SPEC §6). slapd lets the rootDN set the
  operational attribute under the Relax Rules control.
- `BindLoop`: a RADIUS-like client: one python-ldap connection to the front, re-bound as one
  user again and again until stopped, every attempt timed and its result code kept.
- `bind_code(url, name, password)`: one bind on a fresh connection: the result code, seconds;
  `client`, `close_client`, `result_code` for clients of one's own.
- `table_rows(store_url, table)`: a table's rows as tuples, ordered, for before/after
  comparisons byte for byte.
- `entry_uuids(server)`: uid -> entryUUID of every user under ou=people, read as the rootDN.
- `serving(gateway)`: start a gateway process; at the end a clean SIGTERM shutdown is
  required of it if it still runs, and it is closed whatever happened. `restart(gateway)`
  starts a killed one again on its store.

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ldap
from sqlalchemy import MetaData, Table, create_engine, select

from tests.ldapproxy.conftest import running
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.slapd import Slapd, SlapdError

__all__ = [
    "Attempt",
    "BindLoop",
    "Replicated",
    "add_replicated",
    "bind_code",
    "client",
    "close_client",
    "entry_uuids",
    "restart",
    "result_code",
    "serving",
    "table_rows",
]

#: OpenLDAP's Relax Rules control (draft-zeilenga-ldap-relax): lets the rootDN write
#: NO-USER-MODIFICATION attributes such as entryUUID.
RELAX_RULES = "1.3.6.1.4.1.4203.666.5.12"
SUCCESS, UNAVAILABLE = 0, 52
#: What an attempt that got no LDAP answer at all (connection lost, client timeout) records.
NO_ANSWER = -1


@dataclass(frozen=True)
class Replicated:
    """A user present, with one entryUUID, on every server it was added to."""

    uid: str
    dn: str
    password: str
    entry_uuid: str


def add_replicated(servers: Sequence[Slapd], uid: str, **attributes: Any) -> Replicated:
    """Add `uid=<uid>,ou=people` with the same entryUUID (and password) on every server."""
    entry_uuid = str(uuid.uuid4())
    password = f"{uid}-pw-{uuid.uuid4().hex[:6]}"
    dn = ""
    for server in servers:
        dn = f"uid={uid},{server.people_dn}"
        values = {
            "uid": uid,
            "cn": uid,
            "sn": uid,
            "mail": f"{uid}@example.org",
            "userPassword": password,
            "entryUUID": entry_uuid,
            **attributes,
        }
        with server.admin_connection() as conn:
            conn.add(dn, ["inetOrgPerson"], values, controls=[(RELAX_RULES, True, None)])
            if conn.result["result"] != 0:
                raise SlapdError(f"add {dn} on {server.url}: {conn.result}")
    return Replicated(uid, dn, password, entry_uuid)


def entry_uuids(server: Slapd) -> dict[str, str]:
    """uid -> entryUUID of every entry under ou=people (paged, as the rootDN)."""
    with server.admin_connection() as conn:
        found = conn.extend.standard.paged_search(
            server.people_dn,
            "(uid=*)",
            attributes=["uid", "entryUUID"],
            paged_size=500,
            generator=False,
        )
        return {
            entry["raw_attributes"]["uid"][0].decode(): (
                entry["raw_attributes"]["entryUUID"][0].decode()
            )
            for entry in found
            if entry.get("type") == "searchResEntry"
        }


# -- clients -------------------------------------------------------------------------------------


def client(url: str, timeout: float) -> Any:
    """A python-ldap connection (LDAPv3, no referrals) whose operations give up after
    `timeout` seconds."""
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
    conn.set_option(ldap.OPT_TIMEOUT, timeout)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    return conn


def close_client(conn: Any) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()


def result_code(exc: ldap.LDAPError) -> int:
    """The LDAP result code a python-ldap error carries; NO_ANSWER when none came."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    if isinstance(exc, ldap.SERVER_DOWN | ldap.TIMEOUT):
        return NO_ANSWER
    return int(info.get("result", NO_ANSWER))


def bind_code(url: str, name: str, password: str, timeout: float = 15.0) -> tuple[int, float]:
    """One simple bind on a new connection to `url`: (LDAP result code, seconds it took)."""
    conn = client(url, timeout)
    began = time.monotonic()
    try:
        conn.simple_bind_s(name, password)
        code = SUCCESS
    except ldap.LDAPError as exc:
        code = result_code(exc)
    took = time.monotonic() - began
    close_client(conn)
    return code, took


@dataclass(frozen=True)
class Attempt:
    """One bind of a `BindLoop`: when it was sent and answered (monotonic), and the code."""

    started: float
    ended: float
    code: int


@dataclass
class BindLoop:
    """One client connection re-binding as one user until `stop()` (a pooled RADIUS link).

    A connection that is lost is reopened (as RADIUS servers do), and the attempt that lost it
    is recorded with NO_ANSWER.
    """

    url: str
    name: str
    password: str
    timeout: float = 10.0
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"binds-{self.name}", daemon=True)

    def start(self) -> BindLoop:
        self._thread.start()
        return self

    def stop(self) -> list[Attempt]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        assert not self._thread.is_alive(), f"{self.name}: a bind never returned"
        return self.snapshot()

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def successes_since(self, since: float) -> int:
        return sum(1 for a in self.snapshot() if a.started >= since and a.code == SUCCESS)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            if conn is None:
                conn = client(self.url, self.timeout)
            began = time.monotonic()
            try:
                conn.simple_bind_s(self.name, self.password)
                code = SUCCESS
            except ldap.LDAPError as exc:
                code = result_code(exc)
                if code == NO_ANSWER:
                    close_client(conn)
                    conn = None
            with self._lock:
                self.attempts.append(Attempt(began, time.monotonic(), code))
        if conn is not None:
            close_client(conn)


#: The fixtures' `running` as a `with` block: start the gateway; at the end a clean SIGTERM
#: shutdown if it still runs (a scenario that killed it restarts it or leaves it dead), and
#: close it in any case.
serving = contextlib.contextmanager(running)


def restart(gateway: GatewayProcess) -> None:
    """Start a killed gateway again, same configuration and store.

    Its ports were nobody's while it was dead, and the kernel may have handed one out
    meanwhile as the local port of an outgoing connection (the machine is shared): the
    gateway process fixture then moves it to new ports, as an operator would, and says so.
    """
    gateway.start()


# -- the store -------------------------------------------------------------------------------


def table_rows(store_url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, every column, ordered by the primary key."""
    engine = create_engine(store_url)
    try:
        reflected = Table(table, MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            statement = select(reflected).order_by(*reflected.primary_key.columns)
            return [tuple(row) for row in connection.execute(statement)]
    finally:
        engine.dispose()
