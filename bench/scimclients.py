"""The load of the SCIM benchmark: client processes, each driving several HTTP/1.1
connections over raw non-blocking sockets with one `selectors` loop.

Two scenarios, each connection making one request at a time, back to back:

  filter  `GET <base>/Users?filter=userName eq "<a loaded user, at random>"`; a success is a
          200 whose body says `totalResults` 1;
  cycle   `POST <base>/Users` of a new user (201, the body's `id` read), then
          `PATCH <base>/Users/<id>` with `replace active false` (200 with `"active": false`
          in the body, or 204: RFC 7644 §3.5.2 allows either); the cycle succeeds when both do.

Any other status (every non-2xx), a wrong body, a timeout or a connection error is a failure,
counted by reason. Connections are kept alive (HTTP/1.1) unless the server closes them: a
response with `Connection: close`, or an HTTP/1.0 one without `keep-alive`, ends the
connection and the next request opens a new one (scim2-server's wsgiref server does so after
every response); the opening is part of that request's latency, and the openings are counted.

The clock: the processes connect nothing until every one has started; they are released
together, run the scenario for `warmup` seconds unmeasured (the first connections, the
reference's lazy userName index, caches), then for `seconds` measured. A request counts when
it starts inside the measured window (the PATCH of a counted cycle counts wherever it falls).
The client side is light: a request costs the clients ~0.1-0.3 ms of CPU (reported; the
more when every request opens a connection).

Processes rather than threads, as in bench/ldapclients.py: the clients must not share one GIL.
"""

import contextlib
import errno
import json
import math
import multiprocessing
import queue
import random
import re
import selectors
import socket
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any
from urllib.parse import quote

from bench.measure import Measurement, stop_clients
from bench.scimusers import DISABLE_PATCH, cycle_payload, user_name

SCENARIOS = ("filter", "cycle")
#: The kinds of request measured, by scenario; "cycle" is the POST and its PATCH together.
KINDS = {"filter": ("filter",), "cycle": ("create", "disable", "cycle")}
# A request that takes longer than this fails ("timeout") and its connection is dropped.
REQUEST_TIMEOUT = 10.0
_READY_TIMEOUT = 60.0
_TOTAL = re.compile(rb'"totalResults"\s*:\s*(\d+)')
_INACTIVE = re.compile(rb'"active"\s*:\s*false')
_RECV = 262_144


@dataclass(frozen=True)
class Target:
    """An HTTP SCIM endpoint: `http://host:port<base_path>/Users`, with a bearer token."""

    host: str
    port: int
    base_path: str
    token: str


@dataclass(frozen=True)
class Plan:
    """What one client process does: `connections` connections running `scenario`."""

    scenario: str
    connections: int
    seconds: float
    warmup: float
    #: Loaded users (filter picks among 1..users).
    users: int
    #: Names this process's cycle users (unique per run, target and process).
    tag: str
    seed: int


@dataclass
class ClientResult:
    successes: Counter[str] = field(default_factory=Counter)
    failures: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: dict[str, array] = field(default_factory=dict)  # type: ignore[type-arg]
    connects: int = 0
    #: Start and end of the measured window (perf_counter: CLOCK_MONOTONIC, shared by all).
    started: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    error: str | None = None


@dataclass
class Outcome:
    """The merged result of every client process."""

    measurements: dict[str, Measurement]
    #: TCP connections opened in the measured window, and the requests made in it.
    connects: int
    requests: int
    cpu_seconds: float


def run(
    target: Target, plans: list[Plan], *, on_start: Callable[[], None] | None = None
) -> Outcome:
    """One process per plan, released together; `on_start` runs here when the measured
    window opens (after the warm-up). Raises RuntimeError when a client could not start."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(plans) + 1)
    results: Queue[ClientResult] = context.Queue()
    processes = [
        context.Process(target=_client, args=(target, plan, barrier, results), name=f"scim-{i}")
        for i, plan in enumerate(plans)
    ]
    for process in processes:
        process.start()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(_READY_TIMEOUT)
            if on_start is not None:
                time.sleep(max(plan.warmup for plan in plans))
                on_start()
        wait = _READY_TIMEOUT + max(p.warmup + p.seconds for p in plans) + 2 * REQUEST_TIMEOUT
        collected = [results.get(timeout=wait) for _ in processes]
    except queue.Empty as exc:
        raise RuntimeError(f"SCIM clients of port {target.port} did not finish") from exc
    finally:
        stop_clients(processes, results)
    errors = [r.error for r in collected if r.error is not None]
    if errors:
        raise RuntimeError(f"a SCIM client of port {target.port} failed: {errors[0]}")
    seconds = max(r.ended for r in collected) - min(r.started for r in collected)
    kinds = KINDS[plans[0].scenario]
    measurements = {kind: Measurement(seconds=seconds) for kind in kinds}
    for r in collected:
        for kind in kinds:
            measurements[kind].merge(
                Measurement(
                    successes=r.successes[kind],
                    failures=r.failures.get(kind, Counter()),
                    latencies=list(r.latencies.get(kind, ())),
                )
            )
    requests = sum(measurements[k].calls for k in kinds if k != "cycle")
    return Outcome(
        measurements,
        sum(r.connects for r in collected),
        requests,
        sum(r.cpu_seconds for r in collected),
    )


def split(connections: int, processes: int) -> list[int]:
    """`connections` shared out between at most `processes` processes, as evenly as can be."""
    processes = max(1, min(processes, connections))
    return [connections // processes + (i < connections % processes) for i in range(processes)]


# -- one client process -------------------------------------------------------------------------


def _client(target: Target, plan: Plan, barrier: Barrier, results: "Queue[ClientResult]") -> None:
    try:
        results.put(_Loop(target, plan).run(barrier))
    except Exception as exc:
        barrier.abort()
        results.put(ClientResult(error=f"{type(exc).__name__}: {exc}"))


class _Connection:
    """One connection's state: its socket, the request in flight and its response so far."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sock: socket.socket | None = None
        self.reused = False  # has served a response already (a keep-alive connection)
        self.kind = ""
        self.request = b""
        self.out = memoryview(b"")
        self.response = bytearray()
        self.began = 0.0
        self.counted = False
        self.retried = False
        # The cycle: when its POST began, and the id it created (its PATCH is due next).
        self.cycle_began = 0.0
        self.created_id: str | None = None


class _Loop:
    """The client's event loop: every connection is either waiting on its socket (in the
    selector) or due to start its next request (`due`)."""

    def __init__(self, target: Target, plan: Plan) -> None:
        self.target = target
        self.plan = plan
        self.rng = random.Random(plan.seed)  # noqa: S311 - sampling, not security
        self.selector = selectors.DefaultSelector()
        self.due: deque[_Connection] = deque()
        kinds = KINDS[plan.scenario]
        self.result = ClientResult(
            failures={kind: Counter() for kind in kinds},
            latencies={kind: array("d") for kind in kinds},
        )
        self.measure_from = math.inf
        self.stop_at = math.inf
        self.last_end = 0.0
        self.cycles = 0
        self.head = (
            f"Host: {target.host}:{target.port}\r\nAuthorization: Bearer {target.token}\r\n"
            "Accept: application/scim+json\r\n"
        ).encode()
        self.users_path = f"{target.base_path}/Users"

    def run(self, barrier: Barrier) -> ClientResult:
        connections = [_Connection(i) for i in range(self.plan.connections)]
        barrier.wait(_READY_TIMEOUT)
        cpu = time.process_time()
        self.measure_from = time.perf_counter() + self.plan.warmup
        self.stop_at = self.measure_from + self.plan.seconds
        active = set(connections)
        self.due.extend(connections)
        while active:
            while self.due:
                conn = self.due.popleft()
                if not self._next(conn, time.perf_counter()):
                    self._close(conn)
                    active.discard(conn)
            if not active:
                break
            for key, _mask in self.selector.select(timeout=0.2):
                self._step(key.data)
            now = time.perf_counter()
            for conn in active:
                if conn.sock is not None and now - conn.began > REQUEST_TIMEOUT:
                    self._close(conn)
                    self._finish(conn, "timeout", now)
        self.result.started = self.measure_from
        self.result.ended = max(self.last_end, self.measure_from)
        self.result.cpu_seconds = time.process_time() - cpu
        self.selector.close()
        return self.result

    # -- requests ---------------------------------------------------------------------------

    def _next(self, conn: _Connection, now: float) -> bool:
        """Start the connection's next request; False when it has nothing more to do."""
        if conn.created_id is not None:  # the cycle's POST succeeded: its PATCH now
            path = f"{self.users_path}/{conn.created_id}"
            conn.created_id = None
            self._start(conn, "disable", self._with_body("PATCH", path, _DISABLE_BODY), now)
            return True  # counted as its POST was
        if now >= self.stop_at:
            return False
        conn.counted = now >= self.measure_from
        if self.plan.scenario == "filter":
            name = user_name(self.rng.randint(1, self.plan.users))
            query = quote(f'userName eq "{name}"', safe="")
            line = f"GET {self.users_path}?filter={query} HTTP/1.1\r\n".encode()
            self._start(conn, "filter", line + self.head + b"\r\n", now)
            return True
        self.cycles += 1
        conn.cycle_began = now
        body = json.dumps(cycle_payload(f"{self.plan.tag}-{conn.index}", self.cycles)).encode()
        self._start(conn, "create", self._with_body("POST", self.users_path, body), now)
        return True

    def _with_body(self, method: str, path: str, body: bytes) -> bytes:
        line = f"{method} {path} HTTP/1.1\r\n".encode()
        length = f"Content-Type: application/scim+json\r\nContent-Length: {len(body)}\r\n\r\n"
        return line + self.head + length.encode() + body

    def _start(self, conn: _Connection, kind: str, request: bytes, now: float) -> None:
        conn.kind, conn.request, conn.began, conn.retried = kind, request, now, False
        conn.response = bytearray()
        conn.out = memoryview(request)
        if conn.sock is None:
            self._connect(conn)
        else:
            self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _connect(self, conn: _Connection) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((self.target.host, self.target.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            time.sleep(0.01)  # refused at once: do not spin
            self._finish(conn, f"connect: {errno.errorcode.get(code, code)}", time.perf_counter())
            return
        conn.sock, conn.reused = sock, False
        if conn.counted:
            self.result.connects += 1
        self.selector.register(sock, selectors.EVENT_WRITE, conn)

    def _step(self, conn: _Connection) -> None:
        """Handle one readiness event of `conn`'s socket."""
        sock = conn.sock
        if sock is None:
            return
        try:
            if conn.out:
                if not conn.reused:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, errno.errorcode.get(code, str(code)))
                sent = sock.send(conn.out)
                conn.out = conn.out[sent:]
                if not conn.out:
                    self.selector.modify(sock, selectors.EVENT_READ, conn)
                return
            data = sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            self._broken(conn, f"{type(exc).__name__}: {exc.strerror or exc}")
            return
        if not data:
            self._eof(conn)
            return
        conn.response += data
        parsed = _parse(conn.response, eof=False)
        if parsed is not None:
            self._answered(conn, *parsed)

    def _eof(self, conn: _Connection) -> None:
        if not conn.response and conn.reused and not conn.retried:
            # The server closed an idle keep-alive connection: resend, as HTTP clients do.
            self._close(conn)
            conn.retried = True
            conn.out = memoryview(conn.request)
            self._connect(conn)
            return
        parsed = _parse(conn.response, eof=True)
        if parsed is None:
            self._broken(conn, "connection closed mid-response")
        else:
            self._answered(conn, *parsed)

    def _broken(self, conn: _Connection, reason: str) -> None:
        self._close(conn)
        self._finish(conn, reason, time.perf_counter())

    def _answered(self, conn: _Connection, status: int, body: bytes, keep_alive: bool) -> None:
        now = time.perf_counter()
        if keep_alive:
            conn.reused = True
        else:
            self._close(conn)
        self._finish(conn, _judge(conn, status, body), now)

    def _finish(self, conn: _Connection, reason: str | None, now: float) -> None:
        """Record the request's outcome (None: success); the connection is due again."""
        kind, result = conn.kind, self.result
        if conn.counted:
            result.latencies[kind].append(now - conn.began)
            if reason is None:
                result.successes[kind] += 1
            else:
                result.failures[kind][reason] += 1
            self.last_end = max(self.last_end, now)
        if reason is not None:
            conn.created_id = None
        if conn.counted and (kind == "disable" or (kind == "create" and reason is not None)):
            result.latencies["cycle"].append(now - conn.cycle_began)
            if reason is None:
                result.successes["cycle"] += 1
            else:
                result.failures["cycle"][f"{kind} failed"] += 1
        self.due.append(conn)

    def _close(self, conn: _Connection) -> None:
        if conn.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
        conn.reused = False


_DISABLE_BODY = json.dumps(DISABLE_PATCH).encode()


def _judge(conn: _Connection, status: int, body: bytes) -> str | None:
    """None when the response is what the request should get; else why not."""
    if conn.kind == "disable" and status == 204:
        return None  # RFC 7644 §3.5.2 lets a server answer a PATCH with no body
    expected = 201 if conn.kind == "create" else 200
    if status != expected:
        return f"HTTP {status}{_detail(body)}"
    if conn.kind == "filter":
        total = _TOTAL.search(body)
        if total is None or total[1] != b"1":
            return f"totalResults {total[1].decode() if total else 'missing'}, not 1"
    elif conn.kind == "create":
        try:
            conn.created_id = str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            return "201 without an id"
    elif conn.kind == "disable" and not _INACTIVE.search(body):
        return "200 without active false"
    return None


def _detail(body: bytes) -> str:
    try:
        error: Any = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(error, dict):
        return ""
    parts = [str(error[k]) for k in ("scimType", "detail") if error.get(k)]
    return f" ({': '.join(parts)[:100]})" if parts else ""


def _parse(buffer: bytearray, *, eof: bool) -> tuple[int, bytes, bool] | None:
    """(status, body, keep-alive) once `buffer` holds a whole response; None until then."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    version, _, rest = head[0].partition(" ")
    status = int(rest[:3])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    connection = headers.get("connection", "")
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    start = end + 4
    if "content-length" in headers:
        stop = start + int(headers["content-length"])
        return (status, bytes(buffer[start:stop]), keep_alive) if len(buffer) >= stop else None
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(buffer, start)
        return None if body is None else (status, body, keep_alive)
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep_alive
    return (status, bytes(buffer[start:]), False) if eof else None


def _dechunk(buffer: bytearray, position: int) -> bytes | None:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            return bytes(body) if buffer.find(b"\r\n", position) >= 0 else None
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2
