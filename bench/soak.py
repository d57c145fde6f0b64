"""Soak: one real gateway under a steady mixed load for a long time (30 minutes by default).

Servers: a throwaway slapd loaded with N bench users (bench/users.py), and one `idgate serve`
process with both fronts (tests/resilience/support.py `FullGateway`): an `ldap` source on that
slapd and a `scim` source, on SQLite in a temp dir or (`--store postgresql`) a fresh
PostgreSQL schema, dropped afterwards.

Load (bench/soakload.py), open loop: requests are due on a clock at steady rates, whatever
the answers' latency; a request's latency counts from when it was due.

  binds       `--bind-rate` per second over `--ldap-processes` x `--ldap-connections`
              python-ldap connections, users at random; `[sync] jit_interval_seconds` is
              `--jit-interval` (60 s), so some binds fall in the user's JIT window and some
              read the user upstream first (the interval's SRCH/bind says how many); plus
              `--wrong-bind-rate` wrong passwords (must be refused).
  SCIM writes `--scim-write-rate` per second: 20 % POST new users, 30 % PATCH active, 30 %
              PATCH phoneNumbers, 20 % DELETE (creates and deletes balance, so the live
              population stays at `--scim-users`, created before the start).
  SCIM reads  `--scim-read-rate` filter GETs (userName eq a live user) per second, plus
              deliberate refusals: GET of a deleted user (404), POST of a taken userName (409).

Before the clock: every bench user binds once (the JIT sync adds them), the SCIM users are
created, and the mixed load runs `--warmup` seconds (sampled, not judged).

Every `--interval` seconds (10): the gateway's RSS and peak RSS (VmRSS/VmHWM), CPU, open
descriptors, threads; the store's size; slapd's CPU and the operations it logged; per kind of
request the count, errors by reason, p50/p99 latency and the worst lateness of a start.

Verdicts (see bench/README-soak.md for the reasoning):
  no error       no request answered otherwise than expected, the gateway exited 0 on SIGTERM;
  memory flat    RSS slope over the second half <= 2 MiB per 10 minutes, and the largest RSS
                 of the last window <= 1.10 x the largest of the first window;
  latency stable for binds, SCIM writes and SCIM reads: p99 of the last window <= 2 x the
                 p99 of the first window.
The windows are the first and last 5 minutes of the measured time (a quarter of it when that
is shorter than 20 minutes). Shown, not judged: "load on schedule", no request had to wait
more than 1 s for a free connection (else the gateway, or the machine, could not keep up and
the latencies include the clients' queue). Exit 1 when any request failed or the gateway did
not stop cleanly; the memory and latency verdicts are printed (`met`/`MISSED`) and saved.

Writes bench/results/soak-<UTC timestamp>.json (rewritten at every interval), .md and .png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from bench import ldapclients, soakload
from bench.auth import fresh_store
from bench.ldap import bench_source
from bench.machine import cpu_seconds, environment
from bench.result import Result
from bench.users import generate, load
from tests.ldapproxy.gateway_process import GatewayError
from tests.resilience.support import FullGateway, scim_client, scim_source
from tests.servers.slapd import Slapd

SUMMARY = "a steady mixed load of binds and SCIM writes for 30 minutes: memory, errors, latency"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SOURCE, SCIM_SOURCE, TOKEN = "bench", "soak", "soak-scim-token-0123456789abcdef"
DEFAULT_MINUTES, QUICK_MINUTES = 30.0, 2.0
DEFAULT_WARMUP, QUICK_WARMUP = 60.0, 20.0
#: The judged groups of kinds (latency verdict) and what each one holds.
GROUPS = {
    "binds": ("bind",),
    "SCIM writes": ("scim-create", "scim-active", "scim-phones", "scim-delete"),
    "SCIM reads": ("scim-filter",),
}
#: Share of --scim-write-rate per kind: creates and deletes balance.
WRITE_MIX = {"scim-create": 0.2, "scim-active": 0.3, "scim-phones": 0.3, "scim-delete": 0.2}
SLOPE_LIMIT_MIB_PER_10_MIN = 2.0
GROWTH_LIMIT = 1.10
P99_FACTOR = 2.0
WINDOW_SECONDS = 300.0
#: A request that could start only this late (every worker busy) means the load fell behind.
LAG_LIMIT_MS = 1000.0
# Records reach the parent within FLUSH_SECONDS of their end; an interval is closed this long
# after its end.
_CLOSE_LAG = 2.0
# A client still running this long after the stop will not finish (its requests time out
# after soakload.REQUEST_TIMEOUT).
_GIVE_UP_SECONDS = 60.0
_MEASURED = ["gateway", "store", "ldapproxy", "scim"]
_MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--minutes", type=float, help=f"measured time (default {DEFAULT_MINUTES:g})")
    add(
        "--quick",
        action="store_true",
        help=f"{QUICK_MINUTES:g} minutes, {QUICK_WARMUP:g} s warm-up",
    )
    add(
        "--warmup",
        type=float,
        help=f"seconds of load before the clock (default {DEFAULT_WARMUP:g})",
    )
    add("--interval", type=float, default=10.0, help="seconds per sample (default 10)")
    add("--users", type=int, default=2_000, help="bench users in slapd (default 2,000)")
    add("--bind-rate", type=float, default=100.0, help="binds per second (default 100)")
    add("--wrong-bind-rate", type=float, default=1.0, help="wrong-password binds/s (default 1)")
    add("--ldap-processes", type=int, default=2, help="LDAP client processes (default 2)")
    add("--ldap-connections", type=int, default=4, help="connections per process (default 4)")
    add("--jit-interval", type=int, default=60, help="[sync] jit_interval_seconds (default 60)")
    add("--scim-write-rate", type=float, default=10.0, help="SCIM writes/s (default 10)")
    add("--scim-read-rate", type=float, default=3.0, help="SCIM filter GETs/s (default 3)")
    add(
        "--deliberate-rate", type=float, default=1.0, help="SCIM 404s + 409s per second (default 1)"
    )
    add("--scim-users", type=int, default=500, help="SCIM users made before (default 500)")
    add("--scim-connections", type=int, default=4, help="SCIM connections (default 4)")
    add("--store", choices=("sqlite", "postgresql"), default="sqlite", help="default sqlite")
    add(
        "--database-url",
        default=os.environ.get("IDGATE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL server for --store postgresql (a fresh schema, dropped afterwards)",
    )
    add("--seed", type=int, default=0, help="seed of the random choices")
    add("--no-save", action="store_true", help=f"do not write results to {RESULTS}")


# -- what is sampled ----------------------------------------------------------------------------


@dataclass
class Probe:
    """What one look at the gateway, the store and slapd shows."""

    at: float
    gateway: dict[str, float | None]
    slapd: dict[str, float | None]
    store_bytes: int | None
    upstream: dict[str, int]
    load_1m: float


def process_state(pid: int | None) -> dict[str, float | None]:
    """VmRSS, VmHWM (MiB) and Threads from /proc/<pid>/status, open descriptors, CPU s."""
    state: dict[str, float | None] = {
        "rss_mib": None,
        "hwm_mib": None,
        "threads": None,
        "fds": None,
        "cpu_s": cpu_seconds(pid),
        "runqueue_s": None,
    }
    if pid is None:
        return state
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                state[f"{name[2:].lower()}_mib"] = int(value.split()[0]) / 1024
            elif name == "Threads":
                state["threads"] = int(value)
        state["fds"] = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        state["runqueue_s"] = _runqueue_seconds(pid)
    return state


def _runqueue_seconds(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (field 2 of
    /proc/<pid>/task/<tid>/schedstat, summed): high when other work starves the process,
    the one reading that tells a busy machine from a slow gateway.

    A thread that has ended keeps its last reading (`_RUNQUEUE_NS`): summing only the live
    threads made the total fall when a worker thread exited, and an interval's wait negative."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            _RUNQUEUE_NS[(pid, task.name)] = int((task / "schedstat").read_text().split()[1])
    return sum(ns for (owner, _), ns in _RUNQUEUE_NS.items() if owner == pid) / 1e9


#: (pid, tid) -> nanoseconds runnable but not running, as last read.
_RUNQUEUE_NS: dict[tuple[int, str], int] = {}


class UpstreamLog:
    """Counts slapd's operations as its stats log grows, without keeping the lines (the
    `Slapd.count_*` helpers keep every record: too much over half an hour)."""

    _KINDS: ClassVar[dict[str, re.Pattern[bytes]]] = {
        "binds": re.compile(rb" op=\d+ BIND dn="),
        "searches": re.compile(rb" op=\d+ SRCH base="),
        "connections": re.compile(rb" ACCEPT from "),
    }

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self.counts = dict.fromkeys(self._KINDS, 0)

    def read(self) -> dict[str, int]:
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1
        for kind, pattern in self._KINDS.items():
            self.counts[kind] += len(pattern.findall(data, 0, complete))
        self._offset += complete
        return dict(self.counts)


class Store:
    """The store's size on disk: the SQLite file with its WAL, or the PostgreSQL schema's
    tables with their indexes and TOAST."""

    def __init__(self, gateway: FullGateway, url: str | None) -> None:
        self._gateway = gateway
        self._engine: Any = None
        self._schema = None
        if url is not None:
            from sqlalchemy import create_engine

            match = re.search(r"search_path%3D([A-Za-z0-9_]+)", url)
            self._schema = match[1] if match else None
            self._engine = create_engine(url.split("?")[0], pool_size=1, max_overflow=0)

    def size(self) -> int | None:
        if self._engine is None:
            path = self._gateway.store_path
            sizes = [p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()]
            return sum(sizes) if sizes else None
        from sqlalchemy import text

        query = text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :schema AND c.relkind = 'r'"
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query, {"schema": self._schema}).scalar_one())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


# -- the intervals ------------------------------------------------------------------------------


@dataclass
class Bucket:
    """The requests that ended in one interval."""

    #: From when each request was due to its answer (the latency the verdicts judge).
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: From when it was sent to its answer (the server's share, without waiting for a worker).
    service: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lag: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, record: soakload.Record) -> None:
        kind, due, started, ended, reason = record
        self.latencies[kind].append(ended - due)
        self.service[kind].append(ended - started)
        self.lag[kind] = max(self.lag[kind], started - due)
        if reason is not None:
            self.errors[kind][reason] += 1


def percentile_ms(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile, in milliseconds (as bench/measure.py)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, round(percent / 100 * len(ordered))) - 1] * 1000


def row(
    index: int, seconds: float, t: float, bucket: Bucket, probe: Probe, before: Probe
) -> dict[str, Any]:
    """One interval of the JSON: what the probes saw and what the requests gave."""
    elapsed = probe.at - before.at

    def percent(now: float | None, then: float | None) -> float | None:
        return None if now is None or then is None else round(100 * (now - then) / elapsed, 1)

    kinds = {}
    for kind in sorted(bucket.latencies):
        latencies = bucket.latencies[kind]
        kinds[kind] = {
            "count": len(latencies),
            "per_s": round(len(latencies) / seconds, 2),
            "errors": sum(bucket.errors[kind].values()),
            "p50_ms": _round(percentile_ms(latencies, 50)),
            "p99_ms": _round(percentile_ms(latencies, 99)),
            "service_p99_ms": _round(percentile_ms(bucket.service[kind], 99)),
            "max_start_lag_ms": _round(bucket.lag[kind] * 1000),
        }
    upstream = {k: probe.upstream[k] - before.upstream[k] for k in probe.upstream}
    binds = sum(len(bucket.latencies.get(kind, ())) for kind in soakload.LDAP_KINDS)
    gateway = probe.gateway
    return {
        "interval": index,
        "t_s": round(t, 1),
        "phase": "warm-up" if t <= 0 else "soak",
        "rss_mib": _round(gateway["rss_mib"]),
        "hwm_mib": _round(gateway["hwm_mib"]),
        "cpu_percent": percent(gateway["cpu_s"], before.gateway["cpu_s"]),
        "runqueue_wait_percent": percent(gateway["runqueue_s"], before.gateway["runqueue_s"]),
        "fds": gateway["fds"],
        "threads": gateway["threads"],
        "store_mib": None if probe.store_bytes is None else round(probe.store_bytes / _MIB, 2),
        "slapd_cpu_percent": percent(probe.slapd["cpu_s"], before.slapd["cpu_s"]),
        "slapd_rss_mib": _round(probe.slapd["rss_mib"]),
        "upstream": upstream,
        "searches_per_bind": round(upstream["searches"] / binds, 3) if binds else None,
        "load_1m": round(probe.load_1m, 2),
        "kinds": kinds,
        "errors": {kind: dict(reasons) for kind, reasons in bucket.errors.items() if reasons},
    }


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Soak:
    """A run's parameters and what it gathered."""

    args: argparse.Namespace
    minutes: float
    warmup: float
    intervals: list[dict[str, Any]] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    #: Errors outside the load: the first binds, the SCIM users made before, the clients.
    setup_errors: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)
    clients_cpu_s: float = 0.0
    #: Requests still waiting for a free connection at the stop, dropped unsent, by kind.
    unsent: Counter[str] = field(default_factory=Counter)
    stopped: str = "not stopped"
    stopped_cleanly: bool = False


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """The whole run: its lines printed, its files written (unless `--no-save`), its report
    returned with the exit status (bench/result.py)."""
    minutes = args.minutes or (QUICK_MINUTES if args.quick else DEFAULT_MINUTES)
    warmup = (
        args.warmup if args.warmup is not None else QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    )
    # Whole intervals, so that every sample covers the same time.
    warmup = math.ceil(warmup / args.interval) * args.interval
    soak = Soak(args, minutes, warmup)
    began = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = None if args.no_save else RESULTS / f"soak-{stamp}.json"
    print(
        f"soak: {minutes:g} min measured after {warmup:g} s of warm-up,"
        f" load average {load_at_start:.2f}"
    )
    with contextlib.ExitStack() as stack:
        slapd = Slapd(seed_users=True)
        stack.callback(slapd.close)
        slapd.start()
        users = generate(args.users, slapd.people_dn)
        print(f"slapd {slapd.url}: {len(users):,} users loaded in {load(slapd, users):.1f} s")
        store_url = None
        if args.store == "postgresql":
            store_url = stack.enter_context(fresh_store("postgresql", args.database_url))
        gateway = FullGateway(
            [bench_source(slapd), scim_source(SCIM_SOURCE, TOKEN)],
            store_url=store_url,
            sync={"jit_interval_seconds": args.jit_interval},
            ldap={"default_sources": [SOURCE]},
            log_level="warning",
        )
        stack.callback(gateway.close)
        gateway.start()
        print(
            f"gateway pid {gateway.pid}: LDAP {gateway.url}, HTTP {gateway.http_url},"
            f" store {args.store}"
        )
        store = Store(gateway, store_url)
        stack.callback(store.close)
        scim_users = _prepare(soak, gateway, users)
        _soak(soak, gateway, slapd, store, users, scim_users, path)
        soak.stopped, soak.stopped_cleanly = _stop(gateway)
        print(f"gateway stop: {soak.stopped}")
        soak.notes["gateway_log"] = _log_summary(gateway)
    report = _report(soak, load_at_start, time.perf_counter() - began)
    print(render_markdown(report))
    if path is not None:
        _save(report, path, final=True)
        print(f"results: {path} (.md, .png)")
    return Result(0 if report["verdicts"]["no error"]["met"] else 1, report)


def _prepare(soak: Soak, gateway: FullGateway, users: Sequence[Any]) -> list[tuple[str, str]]:
    """Every bench user's first bind (the JIT add), then the SCIM users the load starts from."""
    began = time.perf_counter()
    concurrency = 4
    plans = [
        ldapclients.Plan([(u.dn, u.password) for u in users[i::concurrency]], 0, None)
        for i in range(concurrency)
    ]
    first, _ = ldapclients.run(gateway.url, plans)
    for reason, count in first.failures.items():
        soak.setup_errors[f"first bind: {reason}"] += count
    print(
        f"first binds: {first.calls:,} in {time.perf_counter() - began:.1f} s,"
        f" {sum(first.failures.values())} failed"
    )
    began = time.perf_counter()
    created = []
    with scim_client(gateway, SCIM_SOURCE, TOKEN) as client:
        for number in range(1, soak.args.scim_users + 1):
            name = f"soak-base-{number:07d}@soak.example"
            response = client.post("/Users", content=json.dumps(soakload.new_user(name, number)))
            if response.status_code == 201:
                created.append((str(response.json()["id"]), name))
            else:
                soak.setup_errors[f"SCIM user made before: HTTP {response.status_code}"] += 1
    print(f"SCIM users made before: {len(created):,} in {time.perf_counter() - began:.1f} s")
    return created


def _plans(
    soak: Soak, gateway: FullGateway, users: Sequence[Any], scim_users: list[tuple[str, str]]
) -> list[soakload.LdapPlan | soakload.ScimPlan]:
    args = soak.args
    processes = max(1, args.ldap_processes)
    pairs = [(u.dn, u.password) for u in users]
    plans: list[soakload.LdapPlan | soakload.ScimPlan] = [
        soakload.LdapPlan(
            gateway.url,
            pairs,
            {"bind": args.bind_rate / processes, "bind-wrong": args.wrong_bind_rate / processes},
            args.ldap_connections,
            phase=index / processes,
            seed=args.seed * 100 + index,
        )
        for index in range(processes)
    ]
    rates = {kind: share * args.scim_write_rate for kind, share in WRITE_MIX.items()}
    rates["scim-filter"] = args.scim_read_rate
    rates["scim-gone"] = rates["scim-conflict"] = args.deliberate_rate / 2
    tag = uuid.uuid4().hex[:6]
    plans.append(
        soakload.ScimPlan(
            gateway.scim_url(SCIM_SOURCE),
            TOKEN,
            scim_users,
            rates,
            args.scim_connections,
            tag,
            args.seed,
        )
    )
    return plans


def _soak(
    soak: Soak,
    gateway: FullGateway,
    slapd: Slapd,
    store: Store,
    users: Sequence[Any],
    scim_users: list[tuple[str, str]],
    path: Path | None,
) -> None:
    """The load, with a probe at every interval's end; an interval's row is written when
    the records of requests that ended in it have arrived."""
    step = soak.args.interval
    count = round((soak.warmup + soak.minutes * 60) / step)
    upstream = UpstreamLog(slapd.log_path)

    def probe() -> Probe:
        return Probe(
            time.perf_counter(),
            process_state(gateway.pid),
            process_state(slapd.pid),
            store.size(),
            upstream.read(),
            os.getloadavg()[0],
        )

    start = time.perf_counter() + 1.0  # the processes fork and connect meanwhile
    stop = start + count * step
    clients = soakload.Clients(_plans(soak, gateway, users, scim_users), start, stop)
    soak.buckets = [Bucket() for _ in range(count)]
    probes: dict[int, Probe] = {}
    clients.start()
    try:
        time.sleep(max(0.0, start - time.perf_counter()))
        probes[-1] = probe()
        closed = 0
        while closed < count:
            now = time.perf_counter()
            tick = start + (len(probes)) * step  # the end of interval len(probes) - 1
            close_at = start + (closed + 1) * step + _CLOSE_LAG
            last_waits = closed == count - 1 and clients.running
            wake = min(
                tick if len(probes) <= count else math.inf, math.inf if last_waits else close_at
            )
            if clients.running and now > stop + _GIVE_UP_SECONDS:
                soak.setup_errors[f"{clients.running} client process(es) never finished"] += 1
                clients.running = 0
            message = clients.receive(min(wake - now, 1.0))
            if isinstance(message, list):
                for record in message:
                    index = min(count - 1, max(0, int((record[3] - start) // step)))
                    soak.buckets[index].add(record)
            elif isinstance(message, soakload.Done):
                soak.clients_cpu_s += message.cpu_seconds
                soak.unsent.update(message.unsent)
                if message.error is not None:
                    soak.setup_errors[f"client {message.name}: {message.error}"] += 1
            now = time.perf_counter()
            if len(probes) <= count and now >= tick:
                probes[len(probes) - 1] = probe()
            last_ready = closed < count - 1 or not clients.running
            if closed in probes and now >= close_at and last_ready:
                _close(soak, closed, probes[closed], probes[closed - 1], start, step)
                closed += 1
                if path is not None:
                    _save(_report(soak, None, None), path, final=False)
    finally:
        clients.close()


def _close(soak: Soak, index: int, probe: Probe, before: Probe, start: float, step: float) -> None:
    t = (index + 1) * step - soak.warmup
    interval = row(index, step, t, soak.buckets[index], probe, before)
    soak.intervals.append(interval)
    kinds = interval["kinds"]
    bind = kinds.get("bind", {})
    writes = sum(kinds.get(kind, {}).get("count", 0) for kind in WRITE_MIX)
    errors = sum(k["errors"] for k in kinds.values())
    print(
        f"  {t:>6.0f} s {interval['phase']:<7} RSS {interval['rss_mib'] or 0:6.1f} MiB"
        f"  CPU {interval['cpu_percent'] or 0:5.1f} %"
        f" (waiting {interval['runqueue_wait_percent'] or 0:5.1f} %)  fds {interval['fds']}"
        f"  threads {interval['threads']}"
        f"  binds {bind.get('per_s', 0):5.1f}/s p99 {bind.get('p99_ms') or 0:6.1f} ms"
        f"  SRCH/bind {interval['searches_per_bind'] or 0:.2f}"
        f"  SCIM writes {writes / step:4.1f}/s  errors {errors}  load {interval['load_1m']:.2f}",
        flush=True,
    )


def _stop(gateway: FullGateway) -> tuple[str, bool]:
    """SIGTERM, and how the gateway ended."""
    if not gateway.running:
        return "was not running (it died during the soak)", False
    try:
        took = gateway.shut_down(timeout=15.0)
    except GatewayError as exc:
        return f"did NOT stop cleanly: {exc}", False
    return f"exited 0 {took:.1f} s after SIGTERM", True


def _log_summary(gateway: FullGateway) -> dict[str, Any]:
    """The gateway logs at `warning`: how many lines of each level, and the first few."""
    levels: Counter[str] = Counter()
    first: list[str] = []
    for line in gateway.log_text().splitlines():
        try:
            record = json.loads(line)
            level = str(record.get("level", "?"))
            message = str(record.get("event") or record.get("message") or line)
        except ValueError:
            level, message = "not json", line
        levels[level] += 1
        if len(first) < 5:
            first.append(f"{level}: {message[:200]}")
    return {"lines_by_level": dict(levels), "first": first}


# -- the verdicts and the report ----------------------------------------------------------------


def _window_seconds(minutes: float, interval: float) -> float:
    """5 minutes, or a quarter of a shorter run; at least one interval."""
    return max(interval, min(WINDOW_SECONDS, minutes * 60 / 4))


def _verdicts(soak: Soak) -> dict[str, dict[str, Any]]:
    measured = [(i, r) for i, r in enumerate(soak.intervals) if r["phase"] == "soak"]
    total = soak.minutes * 60
    window = _window_seconds(soak.minutes, soak.args.interval)
    step = soak.args.interval
    first = [(i, r) for i, r in measured if r["t_s"] <= window + 1e-6]
    last = [(i, r) for i, r in measured if r["t_s"] - step >= total - window - 1e-6]
    errors = _errors(soak)
    verdicts: dict[str, dict[str, Any]] = {
        "no error": {
            "met": not errors and soak.stopped_cleanly,
            "errors": sum(errors.values()),
            "gateway_stop": soak.stopped,
        }
    }
    second_half = [
        (r["t_s"] / 60, r["rss_mib"]) for _, r in measured if r["t_s"] > total / 2 and r["rss_mib"]
    ]
    slope = _slope(second_half)
    first_max = max((r["rss_mib"] for _, r in first if r["rss_mib"]), default=None)
    last_max = max((r["rss_mib"] for _, r in last if r["rss_mib"]), default=None)
    growth = last_max / first_max if first_max and last_max else None
    verdicts["memory flat"] = {
        "met": None
        if slope is None or growth is None
        else slope * 10 <= SLOPE_LIMIT_MIB_PER_10_MIN and growth <= GROWTH_LIMIT,
        "slope_mib_per_10_min": _round(None if slope is None else slope * 10),
        "slope_limit": SLOPE_LIMIT_MIB_PER_10_MIN,
        "first_window_max_rss_mib": _round(first_max),
        "last_window_max_rss_mib": _round(last_max),
        "growth": _round(growth, 3),
        "growth_limit": GROWTH_LIMIT,
    }
    latency: dict[str, Any] = {"factor": P99_FACTOR, "window_s": window}
    met: bool | None = None
    for group, kinds in GROUPS.items():
        p99_first = percentile_ms(_latencies(soak, first, kinds), 99)
        p99_last = percentile_ms(_latencies(soak, last, kinds), 99)
        ratio = p99_last / p99_first if p99_first and p99_last is not None else None
        latency[group] = {
            "first_p99_ms": _round(p99_first),
            "last_p99_ms": _round(p99_last),
            "ratio": _round(ratio),
        }
        if ratio is not None:  # a group with no request in a window is not judged
            met = (met is not False) and ratio <= P99_FACTOR
    verdicts["latency stable"] = {"met": met, **latency}
    # Not a criterion of the soak but what the others mean: a load that fell behind its
    # clock measured an overloaded gateway (or machine), and its latencies include the queue.
    lag = max(
        (k["max_start_lag_ms"] or 0.0 for _, r in measured for k in r["kinds"].values()),
        default=None,
    )
    verdicts["load on schedule"] = {
        "met": None if lag is None else lag <= LAG_LIMIT_MS and not soak.unsent,
        "max_start_lag_ms": _round(lag),
        "unsent_at_stop": dict(soak.unsent),
        "limit_ms": LAG_LIMIT_MS,
        "judged": False,
    }
    return verdicts


def _latencies(
    soak: Soak, rows: list[tuple[int, dict[str, Any]]], kinds: Sequence[str]
) -> list[float]:
    return [x for i, _ in rows for kind in kinds for x in soak.buckets[i].latencies.get(kind, ())]


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (minute, MiB) points, in MiB per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def _errors(soak: Soak) -> Counter[str]:
    errors = Counter(soak.setup_errors)
    for bucket in soak.buckets:
        for kind, reasons in bucket.errors.items():
            for reason, count in reasons.items():
                errors[f"{kind}: {reason}"] += count
    return errors


def _totals(soak: Soak) -> dict[str, Any]:
    """Per kind over the measured time: count, rate, errors, p50/p99/max."""
    measured = [i for i, r in enumerate(soak.intervals) if r["phase"] == "soak"]
    seconds = len(measured) * soak.args.interval
    totals = {}
    for kind in (*soakload.LDAP_KINDS, *soakload.SCIM_KINDS):
        latencies = [x for i in measured for x in soak.buckets[i].latencies.get(kind, ())]
        errors = sum(
            sum(soak.buckets[i].errors[kind].values())
            for i in measured
            if kind in soak.buckets[i].errors
        )
        totals[kind] = {
            "count": len(latencies),
            "per_s": round(len(latencies) / seconds, 2) if seconds else None,
            "errors": errors,
            "p50_ms": _round(percentile_ms(latencies, 50)),
            "p99_ms": _round(percentile_ms(latencies, 99)),
            "max_ms": _round(max(latencies) * 1000 if latencies else None),
            "service_p99_ms": _round(
                percentile_ms([x for i in measured for x in soak.buckets[i].service[kind]], 99)
            ),
        }
    return totals


def _report(soak: Soak, load_at_start: float | None, total: float | None) -> dict[str, Any]:
    args = soak.args
    report: dict[str, Any] = {
        "benchmark": "soak",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "finished": total is not None,
        "parameters": {
            key: getattr(args, key)
            for key in (
                "users",
                "interval",
                "bind_rate",
                "wrong_bind_rate",
                "ldap_processes",
                "ldap_connections",
                "jit_interval",
                "scim_write_rate",
                "scim_read_rate",
                "deliberate_rate",
                "scim_users",
                "scim_connections",
                "store",
                "seed",
            )
        }
        | {"minutes": soak.minutes, "warmup_s": soak.warmup, "write_mix": WRITE_MIX},
        "intervals": soak.intervals,
    }
    if total is None:
        return report
    environment_ = environment(_MEASURED)
    environment_["load_average_1m_at_start"] = (
        None if load_at_start is None else round(load_at_start, 2)
    )
    report.update(
        environment=environment_,
        total_seconds=round(total, 1),
        clients_cpu_s=round(soak.clients_cpu_s, 1),
        totals=_totals(soak),
        errors=dict(_errors(soak)),
        verdicts=_verdicts(soak),
        notes=soak.notes,
    )
    return report


def _save(report: dict[str, Any], path: Path, *, final: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)
    if not final:
        return
    path.with_suffix(".md").write_text(render_markdown(report))
    with contextlib.suppress(ImportError):
        _plot(report, path.with_suffix(".png"))


def render_markdown(report: dict[str, Any]) -> str:
    p, env, verdicts = report["parameters"], report["environment"], report["verdicts"]
    lines = [
        f"# soak {report['at']}",
        "",
        f"{p['minutes']:g} min measured after {p['warmup_s']:g} s warm-up;"
        f" {p['users']:,} LDAP users,"
        f" store {p['store']}; {p['bind_rate']:g} binds/s + {p['wrong_bind_rate']:g} wrong,"
        f" jit_interval_seconds {p['jit_interval']}; {p['scim_write_rate']:g} SCIM writes/s,"
        f" {p['scim_read_rate']:g} filter GETs/s,"
        f" {p['deliberate_rate']:g} deliberate 404/409 per s;"
        f" {p['scim_users']} SCIM users made before. Commit {env['commit']}"
        f"{' (with uncommitted changes)' if env['uncommitted_changes'] else ''},"
        f" {env['cpus']} CPUs, load average {env['load_average_1m_at_start']} at start;"
        f" {report['total_seconds']:.0f} s in all.",
        "",
        "## Verdicts",
        "",
    ]
    for name, verdict in verdicts.items():
        state = {True: "met", False: "MISSED", None: "n/a"}[verdict["met"]]
        if verdict.get("judged") is False:
            state = {True: "yes", False: "NO", None: "n/a"}[verdict["met"]]
        details = ", ".join(f"{k} {v}" for k, v in verdict.items() if k not in ("met", "judged"))
        lines.append(f"- **{name}: {state}** ({details})")
    errors = report["errors"]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {n} x {reason}" for reason, n in sorted(errors.items())]
    lines += [
        "",
        "## Requests over the measured time",
        "",
        "| kind | count | per s | errors | p50 ms | p99 ms | max ms | service p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, t in report["totals"].items():
        lines.append(
            f"| {kind}{' (deliberate)' if kind in soakload.DELIBERATE else ''}"
            f" | {t['count']:,} | {_fmt(t['per_s'])}"
            f" | {t['errors']} | {_fmt(t['p50_ms'])} | {_fmt(t['p99_ms'])} | {_fmt(t['max_ms'])}"
            f" | {_fmt(t['service_p99_ms'])} |"
        )
    lines += ["", *_blocks(report), ""]
    log = report["notes"].get("gateway_log", {})
    lines += [f"Gateway log (level warning): {log.get('lines_by_level') or 'empty'}."]
    lines += [f"    {line}" for line in log.get("first", [])]
    return "\n".join(lines) + "\n"


def _blocks(report: dict[str, Any]) -> list[str]:
    """The per-block table: 5-minute blocks (a quarter of a run under 20 minutes)."""
    p = report["parameters"]
    block = _window_seconds(p["minutes"], p["interval"])
    rows = [r for r in report["intervals"] if r["phase"] == "soak"]
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[math.ceil(r["t_s"] / block - 1e-9) - 1].append(r)
    lines = [
        f"## Per {block / 60:g}-minute block (RSS, fds, threads, store: at the block's end; rates,"
        " CPU and CPU wait (the gateway's threads runnable but not running): the block's mean;"
        " p99 and late (the longest a request waited for a free connection): the worst 10 s"
        " interval of the block)",
        "",
        "| minutes | RSS MiB | peak MiB | CPU % | CPU wait % | fds | threads | store MiB | binds/s"
        " | bind p50/p99 ms | SRCH/bind | writes/s | write p99 ms | filter p99 ms | late ms"
        " | errors | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, group in sorted(groups.items()):
        end = group[-1]

        def mean(key: str, rows: list[dict[str, Any]] = group) -> float | None:
            values = [r[key] for r in rows if r[key] is not None]
            return sum(values) / len(values) if values else None

        def kind(name: str, key: str, rows: list[dict[str, Any]] = group) -> list[float]:
            return [
                r["kinds"][name][key]
                for r in rows
                if name in r["kinds"] and r["kinds"][name][key] is not None
            ]

        writes = [sum(r["kinds"].get(k, {}).get("per_s", 0) for k in WRITE_MIX) for r in group]
        write_p99 = [r["kinds"][k]["p99_ms"] for r in group for k in WRITE_MIX if k in r["kinds"]]
        errors = sum(k["errors"] for r in group for k in r["kinds"].values())
        late = [k["max_start_lag_ms"] or 0.0 for r in group for k in r["kinds"].values()]
        lines.append(
            f"| {number * block / 60:.3g}-{(number + 1) * block / 60:.3g}"
            f" | {_fmt(end['rss_mib'], 1)} | {_fmt(end['hwm_mib'], 1)}"
            f" | {_fmt(mean('cpu_percent'), 1)}"
            f" | {_fmt(mean('runqueue_wait_percent'), 1)} | {end['fds']}"
            f" | {end['threads']} | {_fmt(end['store_mib'], 1)}"
            f" | {_fmt(_mean(kind('bind', 'per_s')), 1)}"
            f" | {_fmt(_mean(kind('bind', 'p50_ms')))}"
            f" / {_fmt(max(kind('bind', 'p99_ms'), default=None))}"
            f" | {_fmt(mean('searches_per_bind'))} | {_fmt(_mean(writes), 1)}"
            f" | {_fmt(max(write_p99, default=None))}"
            f" | {_fmt(max(kind('scim-filter', 'p99_ms'), default=None))}"
            f" | {_fmt(max(late, default=None), 0)} | {errors}"
            f" | {_fmt(mean('load_1m'))} |"
        )
    return lines


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["intervals"]
    minutes = [r["t_s"] / 60 for r in rows]
    figure, (memory, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    memory.plot(minutes, [r["rss_mib"] for r in rows], label="gateway RSS")
    memory.set_ylabel("MiB")
    memory.axvline(0, color="grey", linestyle=":", label="end of warm-up")
    memory.legend(loc="lower right")
    memory.set_title(f"soak {report['at']}: store {report['parameters']['store']}")
    for name in ("bind", "scim-create", "scim-phones", "scim-filter"):
        latency.plot(
            minutes, [r["kinds"].get(name, {}).get("p99_ms") for r in rows], label=f"{name} p99"
        )
    latency.set_yscale("log")
    latency.set_ylabel("ms (p99 per interval)")
    latency.set_xlabel("minutes")
    latency.axvline(0, color="grey", linestyle=":")
    latency.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
