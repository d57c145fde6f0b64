"""In-window binds of real users, quiet and beside a flood of binds of names no source can hold.

A name that routes to no source (a DN under no source's root, a name with a control
character) is refused by the LDAP front on its event loop: whether it routes anywhere follows
from the configuration, so there is nothing to hide and no work to equalise. This measures
what such a flood costs everyone else:

  quiet   `--clients` python-ldap clients re-bind users inside their JIT window for
          `--seconds` (bench/ldapclients.py, as `python -m bench ldap` does);
  flood   the same clients again while one more process sends `--rate` binds per second of
          such names for as long, open-loop (each at its scheduled time, whatever the answers
          do), over four pipelined connections, and counts the answers.

Reported: binds/s, p50 and p99 of the in-window binds in both phases and their ratio; the
flood's sent and answered counts and its achieved rate; the gateway's CPU per phase and the
CPU per flood bind (the flood phase's extra CPU over the quiet phase's, per answered bind).

Target (issue 22): in-window p99 under the flood within 2 x the quiet p99, at 1,000 binds/s
for 10 s.

    .venv/bin/python -m bench flood                       # 300 users, 4 clients, 1000/s, 10 s
    .venv/bin/python -m bench flood --rate 2000 --kind control
"""

import argparse
import json
import multiprocessing
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import ldapclients
from bench.ldap import bench_source
from bench.machine import cpu_seconds, environment
from bench.measure import Measurement
from bench.users import generate, load
from tests.ldapproxy import ber
from tests.ldapproxy.gateway_process import GatewayProcess
from tests.servers.slapd import Slapd

SUMMARY = "in-window binds beside a flood of binds of names no source can hold"
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
#: The issue's bound: p99 under the flood at most this many times the quiet p99.
P99_RATIO_TARGET = 2.0
_CONNECTIONS = 4
_KINDS = {
    # Under no source's root: routes nowhere by the configuration.
    "nowhere": "uid=flood-{n},ou=elsewhere,dc=example,dc=com",
    # A control character: no source holds such a name.
    "control": "flood-{n}\x00",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=300, help="bench users in slapd")
    parser.add_argument("--clients", type=int, default=4, help="in-window bind clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=int, default=1000, help="flood binds per second")
    parser.add_argument("--kind", choices=sorted(_KINDS), default="nowhere")
    parser.add_argument("--no-save", action="store_true", help="write no results file")


@dataclass
class Phase:
    measurement: Measurement
    gateway_cpu: float | None

    def summary(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "binds_per_second": round(m.rate, 1),
            "binds": m.calls,
            "failed": sum(m.failures.values()),
            "p50_ms": round(m.percentile_ms(50), 2),
            "p99_ms": round(m.percentile_ms(99), 2),
            "gateway_cpu_seconds": self.gateway_cpu,
        }


def run(args: argparse.Namespace) -> int:
    slapd = Slapd(seed_users=True)
    try:
        slapd.start()
        users = generate(args.users, slapd.people_dn)
        load(slapd, users)
        gateway = GatewayProcess([bench_source(slapd)], jit_interval_seconds=3600)
        try:
            gateway.start()
            return _measure(args, gateway, [(u.dn, u.password) for u in users])
        finally:
            if gateway.running:
                gateway.shut_down(timeout=10.0)
            gateway.close()
    finally:
        slapd.close()


def _measure(
    args: argparse.Namespace, gateway: GatewayProcess, users: list[tuple[str, str]]
) -> int:
    print(f"warm-up: each of {len(users)} users binds once (the JIT sync adds them)")
    warm, _ = ldapclients.run(gateway.url, [ldapclients.Plan(users, 0, None)])
    if warm.failures:
        print(f"warm-up failed: {dict(warm.failures)}")
        return 1
    quiet = _phase(args, gateway, users)
    print(f"quiet: {quiet.summary()}")

    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    flood = context.Process(
        target=_flood, args=(gateway.port, args.rate, args.seconds + 2.0, args.kind, child)
    )
    flood.start()
    parent.recv()  # connected: the flood starts now, the clients one second into it
    time.sleep(1.0)  # the flood at its rate before the clock starts: the scenario, not a wait
    loaded = _phase(args, gateway, users)
    report: dict[str, int] = parent.recv()
    flood.join(30)
    print(f"flood: {loaded.summary()}")

    answered = report["answered"]
    share = _flood_cpu(quiet, loaded, args.rate)
    ratio = loaded.measurement.percentile_ms(99) / quiet.measurement.percentile_ms(99)
    result = {
        "parameters": vars(args),
        "environment": environment(["gateway", "ldapproxy"], load_average=os.getloadavg()[0]),
        "quiet": quiet.summary(),
        "flood": loaded.summary(),
        "flood_binds": report,
        "flood_rate_achieved": round(answered / report["seconds"], 1),
        "gateway_cpu_us_per_flood_bind": round(share * 1e6, 1) if share is not None else None,
        "p99_ratio": round(ratio, 2),
        "p99_ratio_target": P99_RATIO_TARGET,
        "verdict": "met" if ratio <= P99_RATIO_TARGET else "MISSED",
    }
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"flood-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {path}")
    failed = quiet.measurement.failures or loaded.measurement.failures
    return 1 if failed or report["answered"] < report["sent"] else 0


def _flood_cpu(quiet: Phase, loaded: Phase, rate: int) -> float | None:
    """The gateway's CPU seconds per flood bind: the flood phase's CPU less what its
    in-window binds cost at the quiet phase's CPU per bind, over the flood binds sent while
    the clients ran (`rate` x the phase's length)."""
    if quiet.gateway_cpu is None or loaded.gateway_cpu is None or not quiet.measurement.calls:
        return None
    per_bind = quiet.gateway_cpu / quiet.measurement.calls
    flood_share = loaded.gateway_cpu - per_bind * loaded.measurement.calls
    return flood_share / (rate * loaded.measurement.seconds)


def _phase(
    args: argparse.Namespace, gateway: GatewayProcess, users: list[tuple[str, str]]
) -> Phase:
    n = len(users)
    plans = [
        ldapclients.Plan(users, i * n // args.clients, args.seconds) for i in range(args.clients)
    ]
    cpu: list[float | None] = []
    measurement, _ = ldapclients.run(
        gateway.url, plans, on_start=lambda: cpu.append(cpu_seconds(gateway.pid))
    )
    after = cpu_seconds(gateway.pid)
    before = cpu[0] if cpu else None
    return Phase(measurement, after - before if after is not None and before is not None else None)


def _flood(port: int, rate: int, seconds: float, kind: str, pipe: Connection) -> None:
    """Open-loop: bind number i is sent at start + i / rate, round-robin over the
    connections; a reader per connection counts the answers (each one BER element)."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(_CONNECTIONS)]
    answered = [0] * _CONNECTIONS
    readers = [
        threading.Thread(target=_count_answers, args=(s, answered, i), daemon=True)
        for i, s in enumerate(sockets)
    ]
    for reader in readers:
        reader.start()
    pipe.send("ready")
    total = int(rate * seconds)
    started = time.perf_counter()
    late = 0.0
    for i in range(total):
        due = started + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        name = _KINDS[kind].format(n=i)
        frame = ber.message(i // _CONNECTIONS + 1, ber.bind_request(name, "flood-password"))
        sockets[i % _CONNECTIONS].sendall(frame)
    sent_for = time.perf_counter() - started
    deadline = time.monotonic() + 10.0
    while sum(answered) < total and time.monotonic() < deadline:
        time.sleep(0.05)  # the last answers in flight: a bounded wait for a count
    for s in sockets:
        s.close()
    pipe.send(
        {
            "sent": total,
            "answered": sum(answered),
            "seconds": round(sent_for, 2),
            "most_late_ms": round(late * 1000, 1),
        }
    )


def _count_answers(sock: socket.socket, answered: list[int], index: int) -> None:
    buffer = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        buffer += data
        while len(buffer) >= 2:
            size = _frame_size(buffer)
            if size is None or len(buffer) < size:
                break
            buffer = buffer[size:]
            answered[index] += 1


def _frame_size(buffer: bytes) -> int | None:
    """The length of the BER element at the start of `buffer` (X.690 §8.1.3), if known."""
    first = buffer[1]
    if first < 0x80:
        return 2 + first
    octets = first & 0x7F
    if len(buffer) < 2 + octets:
        return None
    return 2 + octets + int.from_bytes(buffer[2 : 2 + octets], "big")
