"""Binds through the gateway's LDAP front, beside direct slapd binds and OpenLDAP's back-ldap.

One run measures the same load against three targets, always in this order:

  direct     simple binds straight to a throwaway slapd loaded with N bench users;
  back-ldap  the same binds to a second slapd running OpenLDAP's LDAP proxy (`back-ldap`,
             bench/backldap.py) in front of the first: it forwards each bind and keeps and
             syncs nothing;
  gateway    the same binds to `idgate serve --only ldap` (a subprocess, one `ldap` source on
             that slapd, on a SQLite store in a temp dir or, with `--store postgresql`, a
             PostgreSQL schema of its own) for users inside their JIT window: every user is
             bound once just before (a first bind, the JIT sync adds them) and the window is
             an hour;
  due        the same binds to a second gateway process on the same store with a JIT window
             of 0: every bind is JIT-due (a search upstream and a write beside the bind), as
             most binds are in production, where a user binds a few times a day.

The load is `--concurrency` client processes, each with one python-ldap connection that it
re-binds as the next user (as RADIUS servers pooling connections do), cycling over the users
from its own starting point, for a fixed time. Reported per target: binds/s, p50/p99
latency, failures, the upstream's operations per bind and the CPU each process used per
bind; then the ratios.

Targets (issue 17): in the JIT window >= 1.0 x back-ldap and >= 0.4 x direct slapd; every
bind JIT-due >= 0.5 x back-ldap; first binds >= 0.3 x back-ldap.

`--sweep 1,2,4,8,16` then measures the three targets again at each of those numbers of
clients (`--sweep-seconds` each, the targets interleaved at every level), for the plot of
throughput against concurrency that `python -m bench all` draws.
"""

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]  # python-ldap ships no type information

from bench import ldapclients
from bench.auth import fresh_store
from bench.backldap import BackLdap
from bench.machine import cpu_seconds, environment
from bench.measure import Measurement
from bench.pyspy import MODES, Profiler, print_profile, py_spy
from bench.result import Result, memory_mib
from bench.users import BenchUser, generate, load
from tests.ldapproxy.gateway_process import GatewayError, GatewayProcess
from tests.servers.process import ServerProcess
from tests.servers.slapd import Slapd

SUMMARY = "binds through the gateway's LDAP front beside direct slapd and back-ldap"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TITLES = {
    "direct": "direct slapd",
    "back-ldap": "back-ldap proxy",
    "warm": "gateway, first bind (JIT add)",
    "gateway": "gateway, in JIT window",
    "due": "gateway, every bind JIT-due",
}
#: (numerator, denominator) -> the least ratio the issue asks for; None: shown, no target.
RATIOS: dict[tuple[str, str], float | None] = {
    ("gateway", "direct"): 0.4,
    ("gateway", "back-ldap"): 1.0,
    ("due", "back-ldap"): 0.5,
    ("warm", "back-ldap"): 0.3,
    ("back-ldap", "direct"): None,
}
DEFAULT_USERS, DEFAULT_SECONDS = 10_000, 10.0
QUICK_USERS, QUICK_SECONDS = 2_000, 3.0
# back-ldap with one cached upstream connection per client connection (bench/backldap.py):
# without it, its cost per bind grows during the run.
_BACK_LDAP_SINGLE_CONN = True
# Long enough that every measured bind falls inside the window opened by the warm-up.
_JIT_INTERVAL = 3600
# slapd writes its stats log line by line; give the last lines a moment to reach the file.
_LOG_SETTLE_SECONDS = 0.3
# The code measured: an uncommitted change there is recorded with the figures.
_MEASURED = ["gateway", "store", "ldapproxy", "scim"]
# A 1-minute load average above this before the start means the machine is not quiet.
_BUSY_LOAD = 0.5
_DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--users", type=int, help=f"users loaded into slapd (default {DEFAULT_USERS:,})"
    )
    parser.add_argument(
        "--seconds", type=float, help=f"duration per target (default {DEFAULT_SECONDS:g})"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client processes (default 8)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_USERS:,} users and {QUICK_SECONDS:g} s per target, under a minute",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="gil",
        choices=MODES,
        help="sample the gateway with py-spy while it is measured and print where its time"
        " goes: `gil` (the default) samples the thread holding the GIL, `active` every busy"
        " thread (py-spy must be in the venv: `.venv/bin/pip install py-spy`)",
    )
    parser.add_argument(
        "--profile-of",
        choices=("window", "due"),
        default="window",
        help="which target `--profile` samples: the in-window binds (default) or the JIT-due"
        " binds of the second gateway",
    )
    parser.add_argument(
        "--sweep",
        type=_levels,
        default=(),
        help="comma-separated numbers of clients (e.g. 1,2,4,8,16): after the main"
        " measurement, each target is measured again at each of them",
    )
    parser.add_argument(
        "--sweep-seconds", type=float, help="duration per target and level (default --seconds)"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateways' store: a SQLite file (default) or a schema of its own on"
        " --database-url",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("IDGATE_TEST_DATABASE_URL", _DEFAULT_DATABASE_URL),
        help="PostgreSQL for --store postgresql (default $IDGATE_TEST_DATABASE_URL, else"
        f" {_DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--no-save", action="store_true", help=f"do not write the JSON result to {RESULTS}"
    )


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(part) for part in text.split(",") if part.strip())
    if any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError("every level must be at least 1 client")
    return levels


# -- the run ---------------------------------------------------------------------------


@dataclass
class Target:
    """What one target's measured phase gave."""

    key: str
    measurement: Measurement
    #: Binds made outside the clock: each client's first, which opens its connection.
    opening_binds: int
    #: Operations the upstream slapd logged from the first client's start to the last's end.
    upstream_binds: int
    upstream_searches: int
    #: Connections the upstream slapd accepted meanwhile (back-ldap opens one per bind).
    upstream_connections: int
    #: CPU seconds while measured: the clients (summed) and each server process.
    cpu_seconds: dict[str, float | None]
    #: 1-minute load average when it ended (other work on the machine shows here).
    load_average: float

    def per_bind(self, count: float | None) -> float | None:
        """`count` per client bind, opening binds included (they reach the servers too)."""
        binds = self.measurement.calls + self.opening_binds
        return count / binds if count is not None and binds else None

    def as_dict(self) -> dict[str, Any]:
        m = self.measurement
        cpu_ms = {
            name: None if (value := self.per_bind(seconds)) is None else round(value * 1000, 3)
            for name, seconds in self.cpu_seconds.items()
        }
        return {
            "title": TITLES[self.key],
            "seconds": round(m.seconds, 3),
            "binds": m.calls,
            "successes": m.successes,
            "failures": dict(m.failures),
            "binds_per_second": round(m.rate, 1),
            "p50_ms": round(m.percentile_ms(50), 2),
            "p99_ms": round(m.percentile_ms(99), 2),
            "opening_binds": self.opening_binds,
            "upstream_binds_per_bind": _rounded(self.per_bind(self.upstream_binds)),
            "upstream_searches_per_bind": _rounded(self.per_bind(self.upstream_searches)),
            "upstream_connections_per_bind": _rounded(self.per_bind(self.upstream_connections)),
            "cpu_ms_per_bind": cpu_ms,
            "load_average_1m": round(self.load_average, 2),
        }


@dataclass
class Outcome:
    """What a run gathered: the measured targets, notes on those that could not be, and
    the gateway's profile (`--profile`)."""

    targets: dict[str, Target] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    profile_raw: str = ""
    #: `--sweep`: clients -> target key -> what it gave.
    sweep: dict[int, dict[str, Target]] = field(default_factory=dict)
    #: Peak RSS (`VmHWM`) of each server process, read before it was stopped.
    peak_rss_mib: dict[str, float | None] = field(default_factory=dict)

    def fail(self, key: str, why: str) -> None:
        self.notes[key] = f"not measured: {why}"
        print(f"ERROR {key}: {self.notes[key]}")


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """The whole run: its table printed, its JSON written (unless `--no-save`), its report
    returned."""
    users_count = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if args.profile and not py_spy().exists():
        print(f"--profile needs py-spy: {py_spy()} not found (`.venv/bin/pip install py-spy`)")
        return Result(2)
    load_at_start = os.getloadavg()[0]
    if load_at_start > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start:.2f} before the start: other work shares"
            " the CPUs, so the figures will be low and noisy"
        )
    began = time.perf_counter()
    outcome = Outcome()
    slapd = Slapd(seed_users=True)
    try:
        slapd.start()
        users = generate(users_count, slapd.people_dn)
        load_seconds = load(slapd, users)
        print(
            f"slapd {slapd.url}: loaded {len(users):,} users with slapadd in {load_seconds:.1f} s"
        )
        _measure_targets(slapd, users, seconds, args, outcome)
    finally:
        slapd.close()
    parameters = {
        "users": users_count,
        "seconds": seconds,
        "concurrency": args.concurrency,
        "quick": args.quick,
        "profile": args.profile,
        "jit_interval_seconds": _JIT_INTERVAL,
        "store": args.store,
        "back_ldap_single_conn": _BACK_LDAP_SINGLE_CONN,
        "sweep": list(args.sweep),
        "sweep_seconds": args.sweep_seconds or seconds,
    }
    report = _report(parameters, load_seconds, outcome, time.perf_counter() - began)
    report["environment"]["load_average_1m_at_start"] = round(load_at_start, 2)
    _print_table(report, outcome)
    if outcome.profile is not None:
        print_profile(outcome.profile)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"ldap-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results: {path}")
        if outcome.profile_raw:
            raw = path.with_suffix(".py-spy.txt")
            raw.write_text(outcome.profile_raw)
            print(f"py-spy samples (flamegraph.pl input): {raw}")
    failed = {
        key: dict(target.measurement.failures)
        for key, target in outcome.targets.items()
        if target.measurement.failures
    }
    failed.update(
        {
            f"{key} x{clients}": dict(target.measurement.failures)
            for clients, targets in outcome.sweep.items()
            for key, target in targets.items()
            if target.measurement.failures
        }
    )
    if failed:
        print(f"FAILED binds (the figures above include them): {failed}")
    code = 1 if failed or "gateway" not in outcome.targets else 0
    return Result(code, report, outcome.profile_raw)


def _measure_targets(
    slapd: Slapd,
    users: list[BenchUser],
    seconds: float,
    args: argparse.Namespace,
    outcome: Outcome,
) -> None:
    """Start back-ldap and the gateway beside `slapd`, measure the three targets in order,
    and stop them."""
    with fresh_store(args.store, args.database_url) as store_url:
        _measure_on_store(slapd, users, seconds, args, outcome, store_url)


def _measure_on_store(
    slapd: Slapd,
    users: list[BenchUser],
    seconds: float,
    args: argparse.Namespace,
    outcome: Outcome,
    store_url: str,
) -> None:
    proxy = BackLdap(slapd.url, slapd.suffix, single_conn=_BACK_LDAP_SINGLE_CONN)
    gateways = {
        key: GatewayProcess(
            [bench_source(slapd)],
            jit_interval_seconds=interval,
            ldap={"default_sources": ["bench"]},
            log_level="warning",
            store_url=store_url,
        )
        for key, interval in (("gateway", _JIT_INTERVAL), ("due", 0))
    }
    gateway, due = gateways["gateway"], gateways["due"]
    try:
        proxy.start()
        print(f"back-ldap {proxy.url} -> {slapd.url}")
        for key, process in gateways.items():
            try:
                process.start()
                print(f"{key} gateway {process.url} -> {slapd.url} (pid {process.pid})")
            except GatewayError as exc:
                outcome.fail(key, str(exc))
        servers = {"slapd": slapd, "proxy": proxy, **gateways}
        measure = _Measurer(slapd, servers, users, args.concurrency)
        outcome.targets["direct"] = measure.timed("direct", slapd.url, seconds)
        outcome.targets["back-ldap"] = measure.timed("back-ldap", proxy.url, seconds)
        window_profile = args.profile if args.profile_of == "window" else None
        if gateway.running:
            _measure_gateway(measure, gateway, len(users), seconds, window_profile, outcome)
        elif "gateway" not in outcome.notes:
            outcome.fail("gateway", "the gateway process ended before its turn")
        if due.running and "warm" in outcome.targets:
            # The users are in the store already (the warm-up added them): every bind is a
            # JIT re-read of a known user, as a user's first bind of the day is.
            due_profile = args.profile if args.profile_of == "due" else None
            _timed_gateway(measure, "due", due, seconds, due_profile, outcome)
        elif "due" not in outcome.notes:
            outcome.fail("due", "the warm-up did not run or the gateway ended before its turn")
        if args.sweep:
            _sweep(slapd, proxy, gateways, servers, users, args, seconds, outcome)
        for name, server in servers.items():
            outcome.peak_rss_mib[name] = memory_mib(server.pid, "VmHWM")
    finally:
        for key, process in gateways.items():
            outcome.notes[f"{key}_stop"] = _stop(process)
            print(f"{key} gateway stop: {outcome.notes[f'{key}_stop']}")
            process.close()
        proxy.close()


def _measure_gateway(
    measure: "_Measurer",
    gateway: GatewayProcess,
    users: int,
    seconds: float,
    profile: str | None,
    outcome: Outcome,
) -> None:
    """The warm-up (each user's first bind: the JIT sync adds them), then the timed binds
    inside the JIT window, sampled by py-spy when `profile`."""
    print(f"warm-up: binding each of {users:,} users once through the gateway ...")
    outcome.targets["warm"] = measure.once("warm", gateway.url)
    if outcome.targets["warm"].measurement.seconds + seconds > _JIT_INTERVAL * 0.9:
        print("warning: the warm-up took so long that users may leave their JIT window")
    _timed_gateway(measure, "gateway", gateway, seconds, profile, outcome)


def _timed_gateway(
    measure: "_Measurer",
    key: str,
    gateway: GatewayProcess,
    seconds: float,
    profile: str | None,
    outcome: Outcome,
) -> None:
    """The timed binds of target `key` through `gateway`, sampled by py-spy when `profile`."""
    profiler = Profiler(gateway, profile) if profile is not None else None
    try:
        outcome.targets[key] = measure.timed(
            key,
            gateway.url,
            seconds,
            on_start=profiler.start if profiler is not None else None,
        )
    except RuntimeError as exc:
        outcome.fail(key, str(exc))
    finally:
        if profiler is not None:
            outcome.profile = profiler.stop()
            outcome.profile_raw = profiler.raw


def _sweep(
    slapd: Slapd,
    proxy: BackLdap,
    gateways: Mapping[str, GatewayProcess],
    servers: Mapping[str, ServerProcess | None],
    users: list[BenchUser],
    args: argparse.Namespace,
    seconds: float,
    outcome: Outcome,
) -> None:
    """Each target again at each level of `--sweep`, the targets in turn at every level (so
    that a change in the machine's load hits all of them alike); the in-window gateway's users
    are still inside the JIT window the warm-up opened."""
    urls = {"direct": slapd.url, "back-ldap": proxy.url}
    if "warm" in outcome.targets:
        urls.update({key: g.url for key, g in gateways.items() if g.running})
    duration = args.sweep_seconds or seconds
    for clients in args.sweep:
        print(f"sweep: {clients} client{'s' if clients != 1 else ''}, {duration:g} s per target")
        measure = _Measurer(slapd, servers, users, clients)
        outcome.sweep[clients] = {}
        for key, url in urls.items():
            try:
                outcome.sweep[clients][key] = measure.timed(key, url, duration)
            except RuntimeError as exc:
                outcome.notes[f"sweep {key} x{clients}"] = f"not measured: {exc}"
                print(f"ERROR sweep {key} x{clients}: {exc}")


def bench_source(upstream: Slapd) -> dict[str, Any]:
    """The gateway's one `ldap` source: the throwaway slapd's people, as in bench/auth.py."""
    return {
        "id": "bench",
        "kind": "ldap",
        "urls": [upstream.url],
        "bind_dn": upstream.service_dn,
        # The throwaway slapd's service account, written to a file in a temp dir.
        "bind_password": upstream.service_password,
        "roots": [upstream.people_dn],
    }


def _stop(gateway: GatewayProcess) -> str:
    """SIGTERM, and how the gateway ended (a benchmark reports it rather than failing)."""
    if not gateway.running:
        return "was not running"
    try:
        took = gateway.shut_down(timeout=10.0)
    except GatewayError as exc:
        return f"did NOT stop cleanly: {exc}"
    return f"exited gracefully (status 0) {took:.1f} s after SIGTERM"


class _Measurer:
    """Runs the client processes against one target and brackets them with the servers'
    CPU and the upstream's operation counts."""

    def __init__(
        self,
        upstream: Slapd,
        servers: Mapping[str, ServerProcess | None],
        users: Sequence[BenchUser],
        concurrency: int,
    ) -> None:
        self._upstream = upstream
        self._servers = servers
        self._users = [(user.dn, user.password) for user in users]
        self._concurrency = concurrency

    def timed(
        self,
        key: str,
        url: str,
        seconds: float,
        *,
        on_start: Callable[[], None] | None = None,
    ) -> Target:
        """Every client cycles over all users, from its own starting point, for `seconds`."""
        n = len(self._users)
        plans = [
            ldapclients.Plan(self._users, i * n // self._concurrency, seconds)
            for i in range(self._concurrency)
        ]
        return self._measure(key, url, plans, self._concurrency, on_start)

    def once(self, key: str, url: str) -> Target:
        """The clients share the users out: each user is bound exactly once."""
        plans = [
            ldapclients.Plan(self._users[i :: self._concurrency], 0, None)
            for i in range(self._concurrency)
        ]
        return self._measure(key, url, plans, 0, None)

    def _measure(
        self,
        key: str,
        url: str,
        plans: list[ldapclients.Plan],
        opening_binds: int,
        on_start: Callable[[], None] | None,
    ) -> Target:
        upstream = self._upstream
        binds, searches = upstream.count_binds(), upstream.count_operations("SRCH")
        connections = upstream.count_connections()
        cpu: dict[str, float | None] = {}

        def started() -> None:
            cpu.update({name: _cpu_seconds(s) for name, s in self._servers.items()})
            if on_start is not None:
                on_start()

        measurement, clients_cpu = ldapclients.run(url, plans, on_start=started)
        for name, server in self._servers.items():
            after, before = _cpu_seconds(server), cpu.get(name)
            cpu[name] = after - before if after is not None and before is not None else None
        time.sleep(_LOG_SETTLE_SECONDS)
        target = Target(
            key,
            measurement,
            opening_binds,
            upstream.count_binds() - binds,
            upstream.count_operations("SRCH") - searches,
            upstream.count_connections() - connections,
            {"clients": clients_cpu, **cpu},
            os.getloadavg()[0],
        )
        m = measurement
        print(
            f"  {TITLES[key]}: {m.rate:,.0f} binds/s over {m.seconds:.1f} s, {m.calls:,} binds,"
            f" {sum(m.failures.values())} failed"
        )
        return target


# -- the report ------------------------------------------------------------------------


def _report(
    parameters: dict[str, Any], load_seconds: float, outcome: Outcome, total: float
) -> dict[str, Any]:
    targets = outcome.targets
    return {
        "benchmark": "ldap",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "environment": environment(_MEASURED, python_ldap=ldap.__version__),
        "load_seconds": round(load_seconds, 2),
        "total_seconds": round(total, 1),
        "targets": {key: target.as_dict() for key, target in targets.items()},
        "ratios": {
            f"{top}/{bottom}": {
                "ratio": _rounded(ratio),
                "target": goal,
                "met": None if ratio is None or goal is None else ratio >= goal,
            }
            for (top, bottom), goal in RATIOS.items()
            for ratio in [_ratio(targets, top, bottom)]
        },
        "peak_rss_mib": outcome.peak_rss_mib,
        "sweep": {
            str(clients): {key: target.as_dict() for key, target in targets.items()}
            for clients, targets in outcome.sweep.items()
        },
        "notes": outcome.notes,
        "profile": outcome.profile,
    }


def _ratio(targets: dict[str, Target], top: str, bottom: str) -> float | None:
    if top not in targets or bottom not in targets:
        return None
    denominator = targets[bottom].measurement.rate
    return targets[top].measurement.rate / denominator if denominator else None


def _print_table(report: dict[str, Any], outcome: Outcome) -> None:
    processes = ("clients", "slapd", "proxy", "gateway", "due")
    print()
    print(f"{'':<68}upstream per bind{'':<4}CPU ms per bind")
    header = f"{'target':<30}{'binds/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'binds':>8}{'failed':>7}"
    header += f"{'BIND':>7}{'SRCH':>7}{'conn':>7}" + "".join(f"{name:>8}" for name in processes)
    print(header)
    print("-" * len(header))
    for key in ("direct", "back-ldap", "warm", "gateway", "due"):
        target = outcome.targets.get(key)
        if target is None:
            if key in outcome.notes:
                print(f"{TITLES[key]:<30}{outcome.notes[key].splitlines()[0]}")
            continue
        m = target.measurement
        row = (
            f"{TITLES[key]:<30}{m.rate:>8.0f}{m.percentile_ms(50):>8.2f}"
            f"{m.percentile_ms(99):>8.2f}{m.calls:>8}{sum(m.failures.values()):>7}"
            f"{_fmt(target.per_bind(target.upstream_binds)):>7}"
            f"{_fmt(target.per_bind(target.upstream_searches)):>7}"
            f"{_fmt(target.per_bind(target.upstream_connections)):>7}"
        )
        for name in processes:
            per_bind = target.per_bind(target.cpu_seconds.get(name))
            row += f"{_fmt(None if per_bind is None else per_bind * 1000):>8}"
        print(row)
    print()
    for name, ratio in report["ratios"].items():
        if ratio["ratio"] is None:
            print(f"{name:<20} n/a (a target was not measured)")
            continue
        line = f"{name:<20} {ratio['ratio']:.2f}"
        if ratio["target"] is not None:
            verdict = "met" if ratio["met"] else "MISSED"
            line += f"   (target >= {ratio['target']:.2f}: {verdict})"
        print(line)
    if report["sweep"]:
        print(
            "\nbinds/s (p99 ms) by number of clients,"
            f" {report['parameters']['sweep_seconds']:g} s each"
        )
        keys = ("direct", "back-ldap", "gateway", "due")
        print(f"{'clients':>8}" + "".join(f"{TITLES[key]:>30}" for key in keys))
        for clients, targets in report["sweep"].items():
            cells = [
                f"{t['binds_per_second']:,.0f} ({t['p99_ms']:.1f})"
                if (t := targets.get(key))
                else "-"
                for key in keys
            ]
            print(f"{clients:>8}" + "".join(f"{cell:>30}" for cell in cells))
    parameters, environment = report["parameters"], report["environment"]
    print(
        f"\n{parameters['users']:,} users, {parameters['concurrency']} client processes,"
        f" {parameters['seconds']:g} s per target, store {parameters['store']},"
        f" {environment['cpus']} CPUs shared by clients and servers, load average"
        f" {environment['load_average_1m_at_start']:.2f} at start;"
        f" total {report['total_seconds']:.0f} s"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cpu_seconds(server: ServerProcess | None) -> float | None:
    return cpu_seconds(server.pid if server is not None else None)
