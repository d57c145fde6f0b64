"""The soak's load: client processes that send requests on a clock (open loop), not as fast
as they can.

Each client process has a few streams, each a kind of request at a steady rate: slot k of a
stream is due at `start + (k + phase) / rate`. One dispatcher thread hands every slot, when
it is due, to a queue; worker threads (one connection each) take them. When every worker is
busy the slot waits in the queue, and its latency, counted from the time it was *due*, says
so: a slow server cannot slow the load down and hide its own slowness (no coordinated
omission). A slot's record is `(kind, due, started, ended, reason)`; `reason` None means the
answer was the one expected. Records go to the parent in batches every `FLUSH_SECONDS`.

Kinds, and what is expected of each:

  bind           python-ldap simple bind of a loaded user with its password: success.
  bind-wrong     the same with a wrong password: invalidCredentials (deliberate).
  scim-create    POST /Users of a new user (names unique to the run): 201 with an `id`.
  scim-active    PATCH replace `active` (false, then true, ...): 200 or 204.
  scim-phones    PATCH replace `phoneNumbers` with a new mobile number: 200 or 204.
  scim-delete    DELETE /Users/<id>: 204.
  scim-filter    GET /Users?filter=userName eq "<a live user>": 200, totalResults 1.
  scim-gone      GET /Users/<id of a user this run deleted>: 404 (deliberate).
  scim-conflict  POST /Users with a live user's userName: 409 uniqueness (deliberate).

The SCIM process keeps the users it may touch in a pool; a request takes one out and puts it
back when answered, so two requests never race on one user (a PATCH never meets a DELETE in
flight). Creates and deletes run at the same rate, so the source's population stays level.

Processes rather than threads, as in bench/ldapclients.py: the clients must not share one
GIL with each other or with the sampler.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import multiprocessing
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any
from urllib.parse import quote

import httpx
import ldap  # type: ignore[import-untyped]  # python-ldap ships no type information

from bench.ldapclients import _connect, _reason
from bench.scimusers import PATCH_SCHEMA, USER_SCHEMA

#: (kind, due, started, ended, reason): perf_counter seconds (CLOCK_MONOTONIC, shared by all
#: processes); reason None when the answer was the expected one.
Record = tuple[str, float, float, float, str | None]

LDAP_KINDS = ("bind", "bind-wrong")
SCIM_KINDS = (
    "scim-create",
    "scim-active",
    "scim-phones",
    "scim-delete",
    "scim-filter",
    "scim-gone",
    "scim-conflict",
)
#: The kinds whose answer is a refusal on purpose: their expected answer is not an error.
DELIBERATE = frozenset({"bind-wrong", "scim-gone", "scim-conflict"})
FLUSH_SECONDS = 0.5
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class LdapPlan:
    """One LDAP client process: `connections` workers binding `users` (DN, password)."""

    url: str
    users: Sequence[tuple[str, str]]
    rates: dict[str, float]
    connections: int
    phase: float
    seed: int


@dataclass(frozen=True)
class ScimPlan:
    """The SCIM client process: `connections` workers on the source at `base_url`, starting
    from the live users `users` ((id, userName) the parent created)."""

    base_url: str
    token: str
    users: Sequence[tuple[str, str]]
    rates: dict[str, float]
    connections: int
    tag: str
    seed: int


@dataclass(frozen=True)
class Done:
    """A client process's last message: its CPU seconds, and why it stopped early if it did."""

    name: str
    cpu_seconds: float
    #: Requests still waiting for a worker at the stop, by kind: dropped, never sent (a
    #: gateway that fell behind would otherwise keep the run going until it caught up).
    unsent: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Clients:
    """The client processes of a soak: started together, sending records on one queue."""

    def __init__(self, plans: Sequence[LdapPlan | ScimPlan], start: float, stop: float) -> None:
        # fork: the clients need only this module; this process runs no threads to copy.
        context = multiprocessing.get_context("fork")
        self.messages: Queue[list[Record] | Done] = context.Queue()
        self._processes: list[BaseProcess] = [
            context.Process(
                target=_client,
                args=(plan, start, stop, self.messages),
                name=f"soak-{type(plan).__name__[:4].lower()}-{index}",
                daemon=True,
            )
            for index, plan in enumerate(plans)
        ]
        self.running = len(self._processes)

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def receive(self, timeout: float) -> list[Record] | Done | None:
        """The next message, or None after `timeout` seconds without one."""
        try:
            message = self.messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if isinstance(message, Done):
            self.running -= 1
        return message

    def close(self) -> None:
        """Join the processes (killing one still alive after 5 s) and close the queue."""
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
        self.messages.close()


# -- one client process -------------------------------------------------------------------------


def _client(
    plan: LdapPlan | ScimPlan, start: float, stop: float, messages: Queue[list[Record] | Done]
) -> None:
    """The body of a client process; it always ends with a `Done`, so that the parent never
    waits for a client that died."""
    name = multiprocessing.current_process().name
    cpu = time.process_time()
    error = None
    unsent: dict[str, int] = {}
    try:
        if isinstance(plan, LdapPlan):
            handler: Callable[[str], str | None] = _LdapWork(plan).handle
            phase = plan.phase
        else:
            handler = _ScimWork(plan).handle
            phase = 0.5
        dispatcher = _Dispatcher(plan.rates, plan.connections, handler, messages)
        unsent = dispatcher.run(start, stop, phase)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    messages.put(Done(name, time.process_time() - cpu, unsent, error))


class _Dispatcher:
    """Hands out the slots of every stream when due; workers answer them."""

    def __init__(
        self,
        rates: dict[str, float],
        workers: int,
        handler: Callable[[str], str | None],
        messages: Queue[list[Record] | Done],
    ) -> None:
        self._rates = {kind: rate for kind, rate in rates.items() if rate > 0}
        self._workers = workers
        self._handler = handler
        self._messages = messages
        self._jobs: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def run(self, start: float, stop: float, phase: float) -> dict[str, int]:
        """Hand out the slots due before `stop`; returns the ones no worker had taken by
        then, by kind (dropped)."""
        threads = [
            threading.Thread(target=self._work, name=f"soak-worker-{i}", daemon=True)
            for i in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        # (due, kind, slot): slot k of a stream at rate r is due at start + (k + phase) / r.
        due = [(start + phase / rate, kind, 0) for kind, rate in self._rates.items()]
        heapq.heapify(due)
        flushed = time.perf_counter()
        while due and due[0][0] < stop:
            at, kind, slot = due[0]
            while (now := time.perf_counter()) < at:
                if now - flushed >= FLUSH_SECONDS:
                    self._flush()
                    flushed = now
                time.sleep(min(at - now, FLUSH_SECONDS))
            heapq.heapreplace(due, (start + (slot + 1 + phase) / self._rates[kind], kind, slot + 1))
            self._jobs.put((kind, at))
            if now - flushed >= FLUSH_SECONDS:
                self._flush()
                flushed = now
        unsent: Counter[str] = Counter()
        with contextlib.suppress(queue.Empty):
            while True:
                job = self._jobs.get_nowait()
                if job is not None:
                    unsent[job[0]] += 1
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()
        self._flush()
        return dict(unsent)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            kind, at = job
            began = time.perf_counter()
            try:
                reason = self._handler(kind)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            record = (kind, at, began, time.perf_counter(), reason)
            with self._lock:
                self._records.append(record)

    def _flush(self) -> None:
        with self._lock:
            records, self._records = self._records, []
        if records:
            self._messages.put(records)


class _LdapWork:
    """Binds, each worker thread on its own python-ldap connection."""

    def __init__(self, plan: LdapPlan) -> None:
        self._plan = plan
        self._local = threading.local()
        self._rng = random.Random(plan.seed)  # noqa: S311 - sampling, not security
        self._rng_lock = threading.Lock()

    def handle(self, kind: str) -> str | None:
        with self._rng_lock:
            dn, password = self._rng.choice(self._plan.users)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self._plan.url)
        wrong = kind == "bind-wrong"
        try:
            conn.simple_bind_s(dn, f"not-{password}" if wrong else password)
        except ldap.INVALID_CREDENTIALS as exc:
            return None if wrong else _reason(exc)
        except ldap.LDAPError as exc:
            if isinstance(exc, ldap.SERVER_DOWN | ldap.TIMEOUT):
                self._local.conn = None
            return _reason(exc)
        return "a wrong password was accepted" if wrong else None


class _ScimWork:
    """SCIM requests, each worker thread on its own keep-alive httpx client."""

    def __init__(self, plan: ScimPlan) -> None:
        self._plan = plan
        self._local = threading.local()
        self._rng = random.Random(plan.seed)  # noqa: S311 - sampling, not security
        self._lock = threading.Lock()
        self._live = list(plan.users)
        self._gone: list[str] = []
        self._numbers = itertools.count(1)
        self._handlers: dict[str, Callable[[httpx.Client], str | None]] = {
            "scim-create": self._create,
            "scim-active": self._active,
            "scim-phones": self._phones,
            "scim-delete": self._delete,
            "scim-filter": self._filter,
            "scim-gone": self._get_gone,
            "scim-conflict": self._conflict,
        }

    def handle(self, kind: str) -> str | None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(
                base_url=self._plan.base_url,
                headers={
                    "Authorization": f"Bearer {self._plan.token}",
                    "Content-Type": "application/scim+json",
                    "Accept": "application/scim+json",
                },
                timeout=REQUEST_TIMEOUT,
            )
        try:
            return self._handlers[kind](client)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    # -- the pool of live users -----------------------------------------------------------

    @contextlib.contextmanager
    def _user(self) -> Any:
        """Take a live user out of the pool for one request; it goes back afterwards unless
        the request deleted it (then the block sets `taken[0]` to None)."""
        with self._lock:
            if not self._live:
                raise _NoUser
            index = self._rng.randrange(len(self._live))
            self._live[index], self._live[-1] = self._live[-1], self._live[index]
            taken = [self._live.pop()]
        try:
            yield taken
        finally:
            if taken[0] is not None:
                with self._lock:
                    self._live.append(taken[0])

    # -- the requests ---------------------------------------------------------------------

    def _create(self, client: httpx.Client) -> str | None:
        number = next(self._numbers)
        name = f"soak-{self._plan.tag}-{number:07d}@soak.example"
        response = client.post("/Users", content=_json(new_user(name, number)))
        if response.status_code != 201:
            return _status(response)
        try:
            created = (str(response.json()["id"]), name)
        except (ValueError, KeyError, TypeError):
            return "201 without an id"
        with self._lock:
            self._live.append(created)
        return None

    def _active(self, client: httpx.Client) -> str | None:
        with self._user() as taken:
            with self._lock:
                value = self._rng.random() < 0.5
            response = client.patch(f"/Users/{taken[0][0]}", content=_patch("active", value))
            return _patched(response, b'"active":' + (b"true" if value else b"false"))

    def _phones(self, client: httpx.Client) -> str | None:
        with self._user() as taken:
            with self._lock:
                number = f"+1 555 {self._rng.randrange(10_000_000):07d}"
            phones = [{"type": "mobile", "value": number, "primary": True}]
            response = client.patch(f"/Users/{taken[0][0]}", content=_patch("phoneNumbers", phones))
            return _patched(response, number.encode())

    def _delete(self, client: httpx.Client) -> str | None:
        with self._user() as taken:
            user_id = taken[0][0]
            response = client.delete(f"/Users/{user_id}")
            if response.status_code != 204:
                return _status(response)
            taken[0] = None
            with self._lock:
                self._gone.append(user_id)
                del self._gone[:-100]
            return None

    def _filter(self, client: httpx.Client) -> str | None:
        with self._user() as taken:
            query = quote(f'userName eq "{taken[0][1]}"', safe="")
            response = client.get(f"/Users?filter={query}")
            if response.status_code != 200:
                return _status(response)
            total = response.json().get("totalResults")
            return None if total == 1 else f"totalResults {total}, not 1"

    def _get_gone(self, client: httpx.Client) -> str | None:
        with self._lock:
            if not self._gone:
                raise _NoUser
            user_id = self._rng.choice(self._gone)
        response = client.get(f"/Users/{user_id}")
        return None if response.status_code == 404 else f"{_status(response)}, not 404"

    def _conflict(self, client: httpx.Client) -> str | None:
        with self._user() as taken:
            response = client.post("/Users", content=_json(new_user(taken[0][1], 0)))
            if response.status_code != 409:
                return f"{_status(response)}, not 409"
            scim_type = response.json().get("scimType")
            return None if scim_type == "uniqueness" else f"409 with scimType {scim_type}"


class _NoUser(Exception):
    """No live (or deleted) user to act on at this moment: counted as a failure, by name."""

    def __str__(self) -> str:
        return "no user free in the pool"


def new_user(name: str, number: int) -> dict[str, Any]:
    """A SCIM client's creation body: names, an email, a mobile number, active."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "externalId": f"ext-{name}",
        "name": {"givenName": "Soak", "familyName": f"User {number:07d}"},
        "displayName": f"Soak User {number:07d}",
        "emails": [{"value": name, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": f"+1 555 {number:07d}", "type": "mobile", "primary": True}],
        "active": True,
    }


def _patch(path: str, value: Any) -> bytes:
    """RFC 7644 §3.5.2: one `replace` operation."""
    return _json(
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": path, "value": value}]}
    )


def _patched(response: httpx.Response, expected: bytes) -> str | None:
    """RFC 7644 §3.5.2: 200 with the resource (which must show the change), or 204."""
    if response.status_code == 204:
        return None
    if response.status_code != 200:
        return _status(response)
    compact = response.content.replace(b" ", b"")
    return None if expected.replace(b" ", b"") in compact else "200 without the change"


def _status(response: httpx.Response) -> str:
    """`HTTP 500 (scimType: detail)`, the reason a SCIM answer counts under."""
    detail = ""
    with contextlib.suppress(ValueError):
        error = response.json()
        if isinstance(error, dict):
            parts = [str(error[k]) for k in ("scimType", "detail") if error.get(k)]
            detail = f" ({': '.join(parts)[:100]})" if parts else ""
    return f"HTTP {response.status_code}{detail}"


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()
