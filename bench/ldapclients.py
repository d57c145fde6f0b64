"""Benchmark clients: one process each, with one python-ldap connection re-bound in a loop.

Each client process connects and makes a first bind (the "opening" bind, outside the clock),
then waits at a barrier with the others and the parent; when every one is ready they are
released together. A client re-binds its connection as the next user, as a RADIUS server
pooling connections does, cycling over the users from its own starting point for a fixed time
(`Plan.seconds`), or binds each of its users once (`seconds` None, no opening bind). It
records every bind's latency, counts refusals by reason (the exception and the server's
diagnostic) and reconnects when the server drops the connection.

Processes rather than threads: the client side must not share one GIL with itself, so that
what is measured is the server's (on a 2-core machine the clients still share the CPUs
with the servers they measure).
"""

import contextlib
import math
import multiprocessing
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import ldap  # type: ignore[import-untyped]  # python-ldap ships no type information

from bench.measure import Measurement, stop_clients

# A python-ldap operation that takes longer than this counts as failed.
_OPERATION_TIMEOUT = 10.0
# Client processes connect and make their first bind before the clock starts.
_READY_TIMEOUT = 60.0
# The longest a once-per-user run (the warm-up) may take.
_ONCE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Plan:
    """What one client binds: `users` (DN, password) from index `first` on, cycling, for
    `seconds`; or, with `seconds` None, each of `users` once in order."""

    users: Sequence[tuple[str, str]]
    first: int
    seconds: float | None


@dataclass
class ClientResult:
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    #: time.perf_counter() (CLOCK_MONOTONIC, the same in every process) at start and end.
    started: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    #: Why the client could not start (no connection, no first bind).
    error: str | None = None


def run(
    url: str, plans: list[Plan], *, on_start: Callable[[], None] | None = None
) -> tuple[Measurement, float]:
    """One process per plan, all released at once when every one is connected.

    Returns the merged measurement (seconds from the first start to the last end) and the
    clients' CPU seconds in their timed loops. `on_start` runs in this process as the
    clients are released.

    Raises: RuntimeError when a client could not connect or make its first bind.
    """
    # fork: the clients need nothing but this module and start in milliseconds (spawn would
    # import the whole benchmark again in each). This process runs no threads to copy.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(plans) + 1)
    results: Queue[ClientResult] = context.Queue()
    processes = [
        context.Process(
            target=_client, args=(url, plan, barrier, results), name=f"bench-client-{index}"
        )
        for index, plan in enumerate(plans)
    ]
    for process in processes:
        process.start()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(_READY_TIMEOUT)
            if on_start is not None:
                on_start()
        wait = _READY_TIMEOUT + max(plan.seconds or _ONCE_TIMEOUT for plan in plans)
        collected = [results.get(timeout=wait) for _ in processes]
    except queue.Empty as exc:
        raise RuntimeError(f"benchmark clients of {url} did not finish") from exc
    finally:
        stop_clients(processes, results)
    errors = [r.error for r in collected if r.error is not None]
    if errors:
        raise RuntimeError(f"a benchmark client of {url} could not start: {errors[0]}")
    total = Measurement(seconds=max(r.ended for r in collected) - min(r.started for r in collected))
    for r in collected:
        total.merge(Measurement(successes=r.successes, failures=r.failures, latencies=r.latencies))
    return total, sum(r.cpu_seconds for r in collected)


def _client(url: str, plan: Plan, barrier: Barrier, results: "Queue[ClientResult]") -> None:
    """The body of one client process: connect, wait for the others, bind in a loop. It
    always puts one result, so that the parent never waits for a client that died."""
    try:
        results.put(_bind_loop(url, plan, barrier))
    except Exception as exc:
        barrier.abort()
        results.put(ClientResult(error=f"{type(exc).__name__}: {exc}"))


def _bind_loop(url: str, plan: Plan, barrier: Barrier) -> ClientResult:
    result = ClientResult()
    try:
        conn = _connect(url)
        if plan.seconds is not None:
            # Opens the TCP connection (and back-ldap's upstream one) outside the clock. A
            # refused bind is not the end: the timed loop counts the refusals.
            with contextlib.suppress(ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM):
                conn.simple_bind_s(*plan.users[plan.first % len(plan.users)])
        barrier.wait(_READY_TIMEOUT)
    except (ldap.LDAPError, threading.BrokenBarrierError) as exc:
        result.error = _reason(exc)
        barrier.abort()
        return result
    cpu = time.process_time()
    result.started = time.perf_counter()
    deadline = math.inf if plan.seconds is None else result.started + plan.seconds
    order = iter(plan.users) if plan.seconds is None else _cycle(plan.users, plan.first)
    for dn, password in order:
        began = time.perf_counter()
        if began >= deadline:
            break
        try:
            conn.simple_bind_s(dn, password)
            result.successes += 1
        except ldap.LDAPError as exc:
            result.failures[_reason(exc)] += 1
            if isinstance(exc, ldap.SERVER_DOWN):
                conn = _connect(url)
        result.latencies.append(time.perf_counter() - began)
    result.ended = time.perf_counter()
    result.cpu_seconds = time.process_time() - cpu
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()
    return result


def _connect(url: str) -> Any:
    """A python-ldap connection (no I/O until the first operation)."""
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.timeout = _OPERATION_TIMEOUT
    return conn


def _cycle(users: Sequence[tuple[str, str]], first: int) -> Iterator[tuple[str, str]]:
    index = first
    while True:
        yield users[index % len(users)]
        index += 1


def _reason(exc: BaseException) -> str:
    """A failure's name for the counts: the exception and the server's diagnostic."""
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, dict):
        detail = detail.get("info") or detail.get("desc") or ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
