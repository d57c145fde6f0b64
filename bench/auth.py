"""Authentication throughput of the gateway against plain upstream binds (issue 3).

A throwaway slapd is loaded with N users; the real gateway runtime (`gateway.runtime.main.build`) is
built on a fresh store with one `ldap` source on it; then, each for a fixed time with the same
number of concurrent callers over random users:

  (a) `Authenticator.authenticate()` of users inside their JIT window (all pre-warmed just
      before, so no upstream read is due): store lookup + upstream bind;
  (p) plain simple binds of the same users, each caller re-binding one ldap3 connection
      (what a RADIUS server pooling connections does): the baseline;
  (b) `authenticate()` with `sync.jit_interval_seconds = 0` (a second runtime on the same
      store): every call reads the user upstream and writes the sync, besides the bind.

Targets (issue 3): (a) at least 0.5 x (p), (b) at least 0.25 x (p).
"""

import argparse
import contextlib
import json
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap3
from sqlalchemy import create_engine, func, select, text

from bench.machine import cpu_seconds, environment
from bench.measure import Attempt, AttemptFactory, Measurement, run_each, run_for, stateless
from bench.result import MIB, Result, memory_mib
from bench.users import BenchUser, generate, load
from gateway.config import parse_config
from gateway.runtime.main import Runtime, build
from store.models import User
from tests.reactor import blocking
from tests.servers.slapd import Slapd, close_quietly

SUMMARY = "authenticate() against plain upstream binds, on a throwaway slapd"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGETS = {"a": 0.5, "b": 0.25}
TITLES = {
    "prewarm": "first bind (JIT adds the user)",
    "a": "(a) authenticate, in JIT window",
    "p": "(p) plain upstream bind",
    "b": "(b) authenticate, JIT sync due",
}
DEFAULT_USERS, DEFAULT_SECONDS = 10_000, 10.0
QUICK_USERS, QUICK_SECONDS = 2_000, 3.0
# slapd writes its stats log line by line; give the last lines a moment to reach the file.
_LOG_SETTLE_SECONDS = 0.3
# A 1-minute load average above this before the start means the machine is not quiet.
_BUSY_LOAD = 0.5
# The default JIT window (sync.jit_interval_seconds) that (a) runs inside.
_JIT_INTERVAL = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--users", type=int, help=f"users loaded into slapd (default {DEFAULT_USERS:,})"
    )
    parser.add_argument(
        "--seconds", type=float, help=f"duration of each scenario (default {DEFAULT_SECONDS:g})"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="caller threads (default 8)")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="store of the gateway (default sqlite, in a temp dir)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("IDGATE_TEST_DATABASE_URL"),
        help="PostgreSQL server for --store postgresql (default $IDGATE_TEST_DATABASE_URL);"
        " a fresh schema is made in it and dropped afterwards",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        help="the source's pool_size: upstream connections per pool (default: the gateway's)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_USERS:,} users and {QUICK_SECONDS:g} s per scenario, under a minute",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random user choice")
    parser.add_argument(
        "--no-save", action="store_true", help=f"do not write the JSON result to {RESULTS}"
    )


@dataclass
class Scenario:
    key: str
    measurement: Measurement
    #: Operations slapd logged while the scenario ran (every client, service binds included).
    searches: int
    binds: int
    #: CPU seconds used while it ran: this process (callers and gateway), and slapd.
    cpu_seconds: float
    slapd_cpu_seconds: float | None
    #: 1-minute load average when it ended (other work on the machine shows here).
    load_average: float

    def per_call_ms(self, seconds: float | None) -> float | None:
        calls = self.measurement.calls
        return seconds / calls * 1000 if seconds is not None and calls else None

    def as_dict(self) -> dict[str, Any]:
        m = self.measurement
        slapd_ms = self.per_call_ms(self.slapd_cpu_seconds)
        return {
            "title": TITLES[self.key],
            "seconds": round(m.seconds, 3),
            "calls": m.calls,
            "successes": m.successes,
            "failures": dict(m.failures),
            "binds_per_second": round(m.rate, 1),
            "p50_ms": round(m.percentile_ms(50), 2),
            "p99_ms": round(m.percentile_ms(99), 2),
            "upstream_searches": self.searches,
            "upstream_binds": self.binds,
            "upstream_searches_per_call": round(self.searches / m.calls, 3) if m.calls else None,
            "cpu_ms_per_call": round(self.per_call_ms(self.cpu_seconds) or 0.0, 3),
            "slapd_cpu_ms_per_call": round(slapd_ms, 3) if slapd_ms is not None else None,
            "load_average_1m": round(self.load_average, 2),
        }


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """The whole run: its table printed, its JSON written (unless `--no-save`), its report
    returned."""
    users_count = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if args.store == "postgresql" and not args.database_url:
        print("--store postgresql needs --database-url or IDGATE_TEST_DATABASE_URL")
        return Result(2)
    load_at_start = os.getloadavg()[0]
    if load_at_start > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start:.2f} before the start: other work shares"
            " the CPUs, so the figures will be low and noisy"
        )
    began = time.perf_counter()
    slapd = Slapd(seed_users=True)
    try:
        slapd.start()
        users = generate(users_count, slapd.people_dn)
        load_seconds = load(slapd, users)
        print(
            f"slapd {slapd.url}: loaded {len(users):,} users with slapadd in {load_seconds:.1f} s"
        )
        with fresh_store(args.store, args.database_url) as store_url:
            scenarios = _measure(slapd, store_url, users, seconds, args)
        # The gateway runs in this process (callers included); the peer is slapd.
        peak_rss = {
            "bench_process": _own_peak_rss_mib(),
            "slapd": memory_mib(slapd.pid, "VmHWM"),
        }
    finally:
        slapd.close()
    total = time.perf_counter() - began
    parameters = {
        "users": users_count,
        "seconds": seconds,
        "concurrency": args.concurrency,
        "store": args.store,
        "pool_size": args.pool_size,
        "quick": args.quick,
        "seed": args.seed,
    }
    report = _report(parameters, load_seconds, scenarios, total)
    report["environment"]["load_average_1m_at_start"] = round(load_at_start, 2)
    report["peak_rss_mib"] = peak_rss
    _print_table(report, scenarios)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"auth-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results: {path}")
    failed = {s.key: dict(s.measurement.failures) for s in scenarios if s.measurement.failures}
    if failed:
        print(f"FAILED authentications (the figures above include them): {failed}")
        return Result(1, report)
    return Result(0, report)


def _own_peak_rss_mib() -> float:
    """This process's peak RSS (`ru_maxrss` is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB, 1)


def _measure(
    slapd: Slapd,
    store_url: str,
    users: list[BenchUser],
    seconds: float,
    args: argparse.Namespace,
) -> list[Scenario]:
    concurrency, pool_size = args.concurrency, args.pool_size

    def counted(key: str, measure: Callable[[], Measurement]) -> Scenario:
        searches, binds = slapd.count_operations("SRCH"), slapd.count_binds()
        cpu, slapd_cpu = time.process_time(), cpu_seconds(slapd.pid)
        measurement = measure()
        cpu_used = time.process_time() - cpu
        slapd_now = cpu_seconds(slapd.pid)
        time.sleep(_LOG_SETTLE_SECONDS)
        scenario = Scenario(
            key,
            measurement,
            slapd.count_operations("SRCH") - searches,
            slapd.count_binds() - binds,
            cpu_used,
            slapd_now - slapd_cpu if slapd_now is not None and slapd_cpu is not None else None,
            os.getloadavg()[0],
        )
        m = measurement
        print(
            f"  {TITLES[key]}: {m.rate:.0f}/s over {m.seconds:.1f} s,"
            f" {m.calls:,} calls, {sum(m.failures.values())} failed,"
            f" {scenario.searches:,} upstream searches"
        )
        return scenario

    scenarios = []
    runtime = build(
        parse_config(gateway_config(slapd, store_url, _JIT_INTERVAL, pool_size), {}),
        migrate=True,
    )
    try:
        print(f"pre-warm: authenticating each of {len(users):,} users once ...")
        scenarios.append(
            counted("prewarm", lambda: run_each(concurrency, users, _authenticating(runtime)))
        )
        with runtime.store.reading() as session:
            records = session.scalar(select(func.count()).select_from(User))
        print(f"  store: {records:,} user records")
        if scenarios[-1].measurement.seconds + seconds > _JIT_INTERVAL * 0.9:
            print(
                f"warning: the pre-warm took longer than {_JIT_INTERVAL * 0.9 - seconds:.0f} s:"
                " the first users may leave their JIT window during (a)"
            )
        scenarios.append(
            counted(
                "a",
                lambda: run_for(
                    seconds, concurrency, users, _authenticating(runtime), seed=args.seed
                ),
            )
        )
    finally:
        runtime.close()

    scenarios.append(
        counted(
            "p",
            lambda: run_for(seconds, concurrency, users, _plain_binding(slapd), seed=args.seed),
        )
    )

    runtime = build(parse_config(gateway_config(slapd, store_url, 0, pool_size), {}), migrate=True)
    try:
        # Open the new runtime's connections before the clock starts, as (a) had them.
        run_each(concurrency, users[: 4 * concurrency], _authenticating(runtime))
        scenarios.append(
            counted(
                "b",
                lambda: run_for(
                    seconds, concurrency, users, _authenticating(runtime), seed=args.seed
                ),
            )
        )
    finally:
        runtime.close()
    return scenarios


def gateway_config(
    slapd: Slapd, store_url: str, jit_interval_seconds: int, pool_size: int | None
) -> dict[str, Any]:
    """The configuration (as a parsed TOML document) of a gateway with one `ldap` source."""
    source: dict[str, Any] = {
        "id": "bench",
        "kind": "ldap",
        "urls": [slapd.url],
        "bind_dn": slapd.service_dn,
        "bind_password": slapd.service_password,
        "roots": [slapd.people_dn],
    }
    if pool_size is not None:
        source["pool_size"] = pool_size
    return {
        "store": {"url": store_url},
        "sync": {"jit_interval_seconds": jit_interval_seconds},
        "sources": [source],
    }


def _authenticating(runtime: Runtime) -> AttemptFactory[BenchUser]:
    def attempt(user: BenchUser) -> str | None:
        # The Authenticator lives on the reactor (issue 17): each attempt is run there.
        outcome = blocking(runtime.authenticator.authenticate, user.uid, user.password)
        return None if outcome.ok else outcome.reason.value

    return lambda: stateless(attempt)


def _plain_binding(slapd: Slapd) -> AttemptFactory[BenchUser]:
    @contextlib.contextmanager
    def connection() -> Iterator[Attempt[BenchUser]]:
        server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
        conn = ldap3.Connection(
            server, authentication=ldap3.SIMPLE, raise_exceptions=False, receive_timeout=10
        )
        conn.open(read_server_info=False)

        def attempt(user: BenchUser) -> str | None:
            # Re-bind the same connection as the next user, as the gateway's bind pool does.
            conn.user, conn.password = user.dn, user.password
            if conn.bind(read_server_info=False):
                return None
            return str(conn.result["description"])

        try:
            yield attempt
        finally:
            close_quietly(conn)

    return connection


@contextlib.contextmanager
def fresh_store(kind: str, database_url: str | None) -> Iterator[str]:
    """The URL of an empty store: a SQLite file in a temp dir, or a new PostgreSQL schema
    (dropped afterwards) selected with `options=-csearch_path=...`."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="idgate-bench-") as directory:
            yield f"sqlite:///{directory}/idgate.db"
        return
    assert database_url is not None
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"idgate_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _report(
    parameters: dict[str, Any], load_seconds: float, scenarios: list[Scenario], total: float
) -> dict[str, Any]:
    by_key = {s.key: s for s in scenarios}
    plain = by_key["p"].measurement.rate
    ratios = {key: by_key[key].measurement.rate / plain if plain else 0.0 for key in TARGETS}
    return {
        "benchmark": "auth",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "environment": environment(["gateway", "store"]),
        "load_seconds": round(load_seconds, 2),
        "total_seconds": round(total, 1),
        "scenarios": {s.key: s.as_dict() for s in scenarios},
        "ratios": {
            f"{key}/p": {
                "ratio": round(ratio, 3),
                "target": TARGETS[key],
                "met": ratio >= TARGETS[key],
            }
            for key, ratio in ratios.items()
        },
    }


def _print_table(report: dict[str, Any], scenarios: list[Scenario]) -> None:
    ratios = report["ratios"]
    print()
    header = f"{'scenario':<33}{'binds/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'calls':>8}{'failed':>7}"
    header += f"{'SRCH/call':>10}{'CPU ms/call':>12}{'slapd':>7}  ratio to (p)"
    print(header)
    print("-" * (len(header) + 24))
    for scenario in scenarios:
        m = scenario.measurement
        slapd_ms = scenario.per_call_ms(scenario.slapd_cpu_seconds)
        row = (
            f"{TITLES[scenario.key]:<33}{m.rate:>8.0f}{m.percentile_ms(50):>8.1f}"
            f"{m.percentile_ms(99):>8.1f}{m.calls:>8}{sum(m.failures.values()):>7}"
            f"{scenario.searches / max(m.calls, 1):>10.2f}"
            f"{scenario.per_call_ms(scenario.cpu_seconds) or 0.0:>12.2f}"
            f"{slapd_ms if slapd_ms is not None else float('nan'):>7.2f}"
        )
        ratio = ratios.get(f"{scenario.key}/p")
        if ratio is not None:
            verdict = "met" if ratio["met"] else "MISSED"
            row += f"  {ratio['ratio']:.2f} (target >= {ratio['target']:.2f}: {verdict})"
        print(row)
    parameters, environment = report["parameters"], report["environment"]
    print(
        f"\n{parameters['users']:,} users, {parameters['concurrency']} callers,"
        f" {parameters['seconds']:g} s per scenario, store {parameters['store']},"
        f" {environment['cpus']} CPUs, load average {environment['load_average_1m_at_start']:.2f}"
        f" at start; total {report['total_seconds']:.0f} s"
    )
