"""What the store-fault scenarios share: clients that keep binding and PATCHing while the store
fails, and what they saw.

- `Load`: binder threads (one slapd user each, a fresh LDAP connection per bind, as a RADIUS
  server's pool after a reconnect) and patcher threads (one SCIM user each, flipping `active`),
  every answer recorded with its time; a patcher's last request is always acknowledged, so
  its last 200 is what the store must hold.
- `scim_user(...)`, `stored_active(...)`: create a SCIM user; read `active` from the store.

Nothing here imports pytest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import ldap3
from ldap3.core.exceptions import LDAPException
from sqlalchemy import create_engine, select

from store.models import User
from tests.servers.ldap_client import close_quietly

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
#: An LDAP bind the gateway never answered (connection refused or cut): not a result code.
NO_ANSWER = -1


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic()
    worker: str
    code: int  # LDAP resultCode, or HTTP status
    body: Any = None


def bind_once(port: int, dn: str, password: str) -> int:
    """One simple bind on a new connection; its resultCode (NO_ANSWER if none came)."""
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=port, connect_timeout=5),
        user=dn,
        password=password,
        receive_timeout=30,
    )
    try:
        conn.bind()
        return int(conn.result["result"])
    except LDAPException:
        return NO_ANSWER
    finally:
        close_quietly(conn)


def patch_active(client: httpx.Client, user_id: str, active: bool) -> httpx.Response:
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    }
    return client.patch(f"/Users/{user_id}", json=body)


def scim_user(client: httpx.Client, user_name: str, **attributes: Any) -> dict[str, Any]:
    response = client.post(
        "/Users", json={"schemas": [USER_SCHEMA], "userName": user_name, **attributes}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_active(store_url: str, user_ids: Sequence[str]) -> dict[str, bool]:
    """`active` of each user as the store holds it (status column), read without the gateway."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(User.id, User.status).where(User.id.in_(list(user_ids)))
            ).all()
    finally:
        engine.dispose()
    return {row.id: row.status == "active" for row in rows}


@dataclass
class Load:
    """Concurrent binds and SCIM PATCHes until `stop()`; every answer in `answers`."""

    ldap_port: int
    binders: Sequence[tuple[str, str]]  # (dn, password)
    scim: Callable[[], httpx.Client]
    patched: Sequence[str]  # SCIM user ids, one patcher each
    answers: list[Answer] = field(default_factory=list)
    #: The last acknowledged (200) `active` of each patched user.
    acknowledged: dict[str, bool] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for dn, password in self.binders:
            self._spawn(self._bind, dn, password)
        for user_id in self.patched:
            self._spawn(self._patch, user_id)

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not finish"

    def workers(self) -> list[str]:
        return [dn for dn, _ in self.binders] + list(self.patched)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.at >= moment]

    def wait(self, predicate: Callable[[Answer], bool], moment: float, timeout: float) -> bool:
        """Whether every worker gave an answer matching `predicate` after `moment`, in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = {a.worker for a in self.since(moment) if predicate(a)}
            if seen >= set(self.workers()):
                return True
            time.sleep(0.05)
        return False

    def first(self, worker: str, predicate: Callable[[Answer], bool], moment: float) -> float:
        """When `worker` first answered matching `predicate` after `moment`."""
        return min(a.at for a in self.since(moment) if a.worker == worker and predicate(a))

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _bind(self, dn: str, password: str) -> None:
        while not self._stop.is_set():
            self._record(Answer(time.monotonic(), dn, bind_once(self.ldap_port, dn, password)))

    def _patch(self, user_id: str) -> None:
        active, done = False, True
        with self.scim() as client:
            # Stop only after an acknowledged request: the last 200 is what must be stored.
            while not (self._stop.is_set() and done):
                try:
                    response = patch_active(client, user_id, active)
                except httpx.HTTPError as exc:
                    self._record(Answer(time.monotonic(), user_id, NO_ANSWER, repr(exc)))
                    done = False
                    continue
                body = response.json() if response.content else None
                self._record(Answer(time.monotonic(), user_id, response.status_code, body))
                done = response.status_code == 200
                if done:
                    with self._lock:
                        self.acknowledged[user_id] = active
                    active = not active
