"""The gateway's SCIM front beside scim2-server's own reference server (issue 5, "Speed").

For each size N (default 1,000, 10,000 and 100,000 users), in one run:

  reference       scim2-server's test server, as its `scim2-server` command builds it
                  (WSGI, `InMemoryStorage`, its threading wsgiref server), preloaded with the
                  N bench users through its storage (bench/scimref.py);
  gateway-sqlite  `idgate serve --only http` with one `scim` source on a SQLite store
                  loaded with the same N users through the gateway's provisioning service
                  before it starts (bench/scimgateway.py);
  gateway-pg      the same on PostgreSQL, in a schema of its own, when the server answers.

Two scenarios, each run against every server in turn with the same load (bench/scimclients.py:
`--connections` HTTP/1.1 connections spread over `--client-processes` processes, back-to-back
requests, `--warmup` seconds unmeasured then `--seconds` measured):

  filter  GET /Users?filter=userName eq "<random loaded user>"   (200, totalResults 1)
  cycle   POST /Users (201), then PATCH active=false on it        (200, or 204)

Reported per size, scenario and server: requests/s, p50/p99 latency, errors (any other status,
body, timeout or connection failure; the command exits 1 when there is one), connections
opened per request, the server's CPU per request and its RSS; then the ratios gateway /
reference. Targets: at 100,000 users >= 3,000 filter GETs/s with p99 <= 15 ms; and ahead of
the reference (ratio > 1) at every size.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import scimclients
from bench.auth import fresh_store
from bench.machine import cpu_seconds, environment
from bench.measure import Measurement
from bench.pyspy import MODES, Profiler, print_profile, py_spy
from bench.result import Result
from bench.scimgateway import Loaded, ScimGateway, load_users
from bench.scimref import ReferenceServer
from bench.scimusers import user_name
from tests.ldapproxy.gateway_process import GatewayError
from tests.servers.process import ServerProcess

SUMMARY = "the SCIM front beside scim2-server's reference server (filter GET, POST+PATCH)"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
DEFAULT_SECONDS, QUICK_SECONDS = 10.0, 3.0
DEFAULT_WARMUP, QUICK_WARMUP = 1.0, 0.5
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: The issue's targets for the filter GET at 100,000 users.
TARGET_SIZE, TARGET_RATE, TARGET_P99_MS = 100_000, 3_000.0, 15.0
SCENARIO_TITLES = {"filter": "filter GET", "cycle": "POST+PATCH cycle"}
_MEASURED = ["gateway", "store", "scim"]
_BUSY_LOAD = 0.5
_MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--sizes",
        type=lambda text: tuple(int(s) for s in text.split(",")),
        help="comma-separated store sizes (default 1000,10000,100000; --quick: 1000,10000)",
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per server and scenario")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--client-processes", type=int, default=4, help="processes sharing them (default 4)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 and 10,000 users, 3 s per measurement"
    )
    parser.add_argument(
        "--stores",
        default="sqlite,postgresql",
        help="gateway stores, comma-separated (default sqlite,postgresql; PostgreSQL is"
        " skipped, and said so, when its server does not answer)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("IDGATE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL server; a fresh schema is made in it per size and dropped afterwards",
    )
    parser.add_argument(
        "--reference-backlog",
        type=int,
        help="the reference's listen backlog (default: as shipped, wsgiref's 5, which drops"
        " connections under this load: bench/scimref.py)",
    )
    parser.add_argument(
        "--load-budget",
        type=float,
        default=180.0,
        help="seconds the gateway's one-by-one load may take before the rest is batched"
        " (default 180: bench/scimgateway.py)",
    )
    parser.add_argument("--no-reference", action="store_true", help="measure the gateway only")
    parser.add_argument("--no-gateway", action="store_true", help="measure the reference only")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="gil",
        choices=MODES,
        help="sample the SQLite gateway with py-spy during its filter GETs at the largest"
        " size (py-spy in the venv: `.venv/bin/pip install py-spy`)",
    )
    parser.add_argument("--no-save", action="store_true", help=f"write nothing to {RESULTS}")


# -- what one measurement gave -------------------------------------------------------------


@dataclass
class Measured:
    server: str
    scenario: str
    outcome: scimclients.Outcome
    cpu_seconds: float | None
    listen_overflows: int | None
    #: 1-minute load average when it ended (other work on the machine shows here).
    load_average: float = 0.0

    @property
    def successes(self) -> int:
        m = self.outcome.measurements
        return sum(m[k].successes for k in scimclients.KINDS[self.scenario] if k != "cycle")

    @property
    def errors(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind in scimclients.KINDS[self.scenario]:
            if kind == "cycle":
                continue
            for reason, n in self.outcome.measurements[kind].failures.items():
                counts[f"{kind}: {reason}"] = n
        return counts

    @property
    def seconds(self) -> float:
        return next(iter(self.outcome.measurements.values())).seconds

    @property
    def rate(self) -> float:
        """Successful requests per second (a cycle is two)."""
        return self.successes / self.seconds if self.seconds else 0.0

    def latencies(self) -> list[float]:
        kinds = [k for k in scimclients.KINDS[self.scenario] if k != "cycle"]
        return [x for k in kinds for x in self.outcome.measurements[k].latencies]

    def as_dict(self) -> dict[str, Any]:
        requests = self.outcome.requests
        merged = Measurement(latencies=self.latencies())
        kinds = {
            kind: {
                "successes": m.successes,
                "failures": dict(m.failures),
                "per_second": round(m.rate, 1),
                "p50_ms": _round(m.percentile_ms(50)),
                "p99_ms": _round(m.percentile_ms(99)),
            }
            for kind, m in self.outcome.measurements.items()
        }
        return {
            "seconds": round(self.seconds, 3),
            "requests": requests,
            "requests_per_second": round(self.rate, 1),
            "p50_ms": _round(merged.percentile_ms(50)),
            "p99_ms": _round(merged.percentile_ms(99)),
            "errors": self.errors,
            "by_kind": kinds,
            "connections_per_request": _per(self.outcome.connects, requests),
            "server_cpu_ms_per_request": _per(self.cpu_seconds, requests, 1000),
            "server_cpu_cores": _per(self.cpu_seconds, self.seconds),
            "client_cpu_ms_per_request": _per(self.outcome.cpu_seconds, requests, 1000),
            "listen_overflows": self.listen_overflows,
            "load_average_1m": round(self.load_average, 2),
        }


@dataclass
class Size:
    users: int
    results: dict[tuple[str, str], Measured] = field(default_factory=dict)
    load: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, dict[str, float | None]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """The whole run: its tables printed, its files written (unless `--no-save`), its report
    returned."""
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    warmup = args.warmup if args.warmup is not None else (
        QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    )  # fmt: skip
    if args.profile and not py_spy().exists():
        print(f"--profile needs py-spy: {py_spy()} not found (`.venv/bin/pip install py-spy`)")
        return Result(2)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    notes: dict[str, str] = {}
    if "postgresql" in stores and not args.no_gateway:
        reason = _postgres_unreachable(args.database_url)
        if reason is not None:
            stores.remove("postgresql")
            notes["gateway-pg"] = f"not measured: PostgreSQL did not answer ({reason})"
            print(f"note: {notes['gateway-pg']}")
    code_at_start = environment(_MEASURED)
    load_at_start = os.getloadavg()[0]
    if load_at_start > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start:.2f} before the start: other work shares"
            " the CPUs, so the figures will be low and noisy"
        )
    began = time.perf_counter()
    run_tag = secrets.token_hex(3)
    measured: list[Size] = []
    profile: dict[str, Any] | None = None
    profile_raw = ""
    path = RESULTS / f"scim-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    parameters = {
        "sizes": list(sizes),
        "seconds": seconds,
        "warmup_seconds": warmup,
        "connections": args.connections,
        "client_processes": min(args.client_processes, args.connections),
        "stores": stores,
        "quick": args.quick,
        "profile": args.profile,
        "reference_backlog": args.reference_backlog,
        "load_budget_seconds": args.load_budget,
    }

    def reported() -> dict[str, Any]:
        report = _report(parameters, measured, notes, profile, time.perf_counter() - began)
        report["environment"]["load_average_1m_at_start"] = round(load_at_start, 2)
        for key in ("commit", "uncommitted_changes"):
            if report["environment"][key] != code_at_start[key]:
                report["notes"]["code"] = (
                    f"the measured code changed during the run: {key} was"
                    f" {code_at_start[key]} at the start, {report['environment'][key]} at the end"
                )
        return report

    for users in sizes:
        size = Size(users)
        measured.append(size)
        profiling = args.profile if users == max(sizes) else None
        raw = _measure_size(size, stores, seconds, warmup, args, f"{run_tag}{users}", profiling)
        if raw is not None:
            profile, profile_raw = raw
        if not args.no_save and users != sizes[-1]:
            # What is measured so far, in case a later size does not finish.
            RESULTS.mkdir(exist_ok=True)
            path.write_text(json.dumps(reported(), indent=2) + "\n")
    report = reported()
    markdown = render_markdown(report)
    print()
    print(markdown)
    if profile is not None:
        print_profile(profile)
        if profile.get("layers"):
            print("  by layer (innermost known frame of each sample):")
            for name, share in profile["layers"]:
                print(f"    {share:6.1%}  {name}")
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown + "\n")
        print(f"results: {path} and {path.with_suffix('.md').name}")
        if profile_raw:
            path.with_suffix(".py-spy.txt").write_text(profile_raw)
            print(f"py-spy samples (flamegraph.pl input): {path.with_suffix('.py-spy.txt')}")
    errors = {
        f"{size.users}/{server}/{scenario}": m.errors
        for size in measured
        for (server, scenario), m in size.results.items()
        if m.errors
    }
    if errors:
        print(f"ERRORS (the figures above include them): {errors}")
    unmeasured = [n for size in measured for n in size.notes.values() if "not measured" in n]
    return Result(1 if errors or unmeasured else 0, report, profile_raw)


def _measure_size(
    size: Size,
    stores: list[str],
    seconds: float,
    warmup: float,
    args: argparse.Namespace,
    tag: str,
    profile: str | None,
) -> tuple[dict[str, Any], str] | None:
    """Start and load every server for this size, measure both scenarios on each, stop them."""
    token = secrets.token_urlsafe(24)
    servers: dict[str, tuple[ServerProcess, scimclients.Target]] = {}
    print(f"\n== {size.users:,} users ==")
    with contextlib.ExitStack() as stack:
        if not args.no_reference:
            try:
                reference = _start_reference(stack, size.users, token, args.reference_backlog)
                print(
                    f"reference {reference.base_url}: {size.users:,} users loaded in"
                    f" {reference.load_seconds()} s (pid {reference.pid})"
                )
                size.load["reference"] = {"seconds": reference.load_seconds()}
                target = scimclients.Target("127.0.0.1", reference.port, "/v2", token)
                servers["reference"] = (reference, target)
            except Exception as exc:
                size.notes["reference"] = f"not measured: {exc}"
                print(f"ERROR reference: {exc}")
        if not args.no_gateway:
            for store in stores:
                key = "gateway-sqlite" if store == "sqlite" else "gateway-pg"
                try:
                    url = None
                    if store != "sqlite":
                        url = stack.enter_context(fresh_store("postgresql", args.database_url))
                    gateway = ScimGateway(token, store_url=url, label=key)
                    stack.callback(_stop_gateway, gateway, size, key)
                    print(f"{key}: loading {size.users:,} users ...")
                    loaded = load_users(gateway, size.users, budget_seconds=args.load_budget)
                    size.load[key] = _loaded(loaded)
                    print(f"{key}: loaded {loaded.describe()}")
                    gateway.start()
                    print(f"{key} {gateway.url}{gateway.base_path} (pid {gateway.pid})")
                    target = scimclients.Target(
                        "127.0.0.1", gateway.http_port, gateway.base_path, token
                    )
                    servers[key] = (gateway, target)
                except Exception as exc:
                    size.notes[key] = f"not measured: {type(exc).__name__}: {exc}"
                    print(f"ERROR {key}: {size.notes[key]}")
        for key, (server, target) in list(servers.items()):
            problem = _prime(target, size.users)
            if problem is not None:
                size.notes[key] = f"not measured: the first request failed: {problem}"
                print(f"ERROR {key}: {size.notes[key]}")
                del servers[key]
            size.memory[key] = {"rss_mib_at_start": _memory(server.pid, "VmRSS")}
        raw: tuple[dict[str, Any], str] | None = None
        for scenario in scimclients.SCENARIOS:
            for key, (server, target) in servers.items():
                profiler = None
                if profile and key == "gateway-sqlite" and scenario == "filter":
                    assert isinstance(server, ScimGateway)
                    profiler = Profiler(server, profile)
                result = _measure(
                    key, scenario, server, target, size.users, seconds, warmup, args, tag,
                    profiler,
                )  # fmt: skip
                size.results[(key, scenario)] = result
                if profiler is not None:
                    ranked = profiler.stop()
                    ranked["layers"] = layers(profiler.raw)
                    ranked["users"] = size.users
                    raw = (ranked, profiler.raw)
        for key, (server, _target) in servers.items():
            size.memory[key]["peak_rss_mib"] = _memory(server.pid, "VmHWM")
            size.memory[key]["rss_mib_at_end"] = _memory(server.pid, "VmRSS")
    return raw


def _measure(
    key: str,
    scenario: str,
    server: ServerProcess,
    target: scimclients.Target,
    users: int,
    seconds: float,
    warmup: float,
    args: argparse.Namespace,
    tag: str,
    profiler: Profiler | None,
) -> Measured:
    cpu: dict[str, float | None] = {}
    overflows: dict[str, int | None] = {}

    def started() -> None:
        cpu["before"] = cpu_seconds(server.pid)
        overflows["before"] = _listen_overflows()
        if profiler is not None:
            profiler.start()

    counts = scimclients.split(args.connections, args.client_processes)
    short = "ref" if key == "reference" else key.removeprefix("gateway-")
    plans = [
        scimclients.Plan(scenario, n, seconds, warmup, users, f"{tag}{short}{i}", i + 1)
        for i, n in enumerate(counts)
    ]
    outcome = scimclients.run(target, plans, on_start=started)
    after, before = cpu_seconds(server.pid), cpu.get("before")
    used = after - before if after is not None and before is not None else None
    o_after, o_before = _listen_overflows(), overflows.get("before")
    overflow = o_after - o_before if o_after is not None and o_before is not None else None
    result = Measured(key, scenario, outcome, used, overflow, os.getloadavg()[0])
    merged = Measurement(latencies=result.latencies())
    print(
        f"  {SCENARIO_TITLES[scenario]:<17} {key:<15} {result.rate:>8,.0f} req/s"
        f"  p50 {merged.percentile_ms(50):6.2f} ms  p99 {merged.percentile_ms(99):7.2f} ms"
        f"  {sum(result.errors.values())} errors  server {result.as_dict()['server_cpu_cores']}"
        f" cores, clients {_per(outcome.cpu_seconds, outcome.requests, 1000)} ms/req,"
        f" {overflow} listen-queue drops, load {result.load_average:.1f}"
    )
    return result


#: Starts of the reference on a new port when the one picked was taken meanwhile (by another
#: process on a shared machine, between the probe and the reference's bind: scim2-server's
#: CLI takes a port number, not a socket, and cannot report a port 0).
_PORT_ATTEMPTS = 3


def _probed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_reference(
    stack: contextlib.ExitStack, users: int, token: str, backlog: int | None
) -> ReferenceServer:
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        reference = ReferenceServer(users, token, _probed_port(), backlog=backlog)
        stack.callback(reference.close)
        try:
            reference.start()
        except Exception as exc:
            if "Address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS:
                raise
            print(f"reference: port {reference.port} was taken meanwhile; another one")
            reference.close()
            continue
        return reference
    raise AssertionError("unreachable")


def _prime(target: scimclients.Target, users: int) -> str | None:
    """One filter GET, unhurried (the reference builds its userName index on the first one);
    None when it answers 200 with the user."""
    query = quote(f'userName eq "{user_name(max(1, users // 2))}"', safe="")
    connection = http.client.HTTPConnection(target.host, target.port, timeout=120)
    try:
        connection.request(
            "GET",
            f"{target.base_path}/Users?filter={query}",
            headers={"Authorization": f"Bearer {target.token}"},
        )
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    if response.status != 200 or b'"totalResults"' not in body:
        return f"HTTP {response.status}: {body[:200]!r}"
    return None


def _stop_gateway(gateway: ScimGateway, size: Size, key: str) -> None:
    if gateway.running:
        try:
            took = gateway.shut_down(timeout=10.0)
            size.notes[f"{key} stop"] = f"exited gracefully (status 0) {took:.1f} s after SIGTERM"
        except GatewayError as exc:
            size.notes[f"{key} stop"] = f"did NOT stop cleanly: {exc}"
            print(f"{key} stop: {size.notes[f'{key} stop']}")
    gateway.close()


def _loaded(loaded: Loaded) -> dict[str, Any]:
    return {
        "seconds": round(loaded.seconds, 1),
        "by_method": loaded.by_method,
        "service_ms_per_user": round(loaded.service_ms_per_user, 3),
    }


def _postgres_unreachable(url: str) -> str | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def _memory(pid: int | None, field_name: str) -> float | None:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return round(int(line.split()[1]) * 1024 / _MIB, 1)
    except OSError:
        return None
    return None


def _listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return None


# -- where the gateway's time goes, by layer ------------------------------------------------

#: (part of a frame, part of its function, layer), tried on each sample's frames from the
#: innermost outwards: the first frame that matches names the layer the sample is charged to.
_LAYERS = [
    ("store/search.py", "_page", "store: COUNT + page SELECT + phones (store/search.py _page)"),
    ("store/groups.py", "", "store: the page's groups (store/groups.py)"),
    ("store/search.py", "", "store: filter compiled to SQL (store/search.py)"),
    ("store/", "", "store: sessions, other"),
    ("gateway/", "", "gateway: provisioning service, records, tokens"),
    ("scim/mapping.py", "", "scim: mapping (stored document -> scim2-models resource)"),
    ("scim/", "", "scim: endpoints, storage adapter, filters, app"),
    ("scim2_server/service.py", "search_response", "scim2-server: ListResponse serialized"),
    ("scim2_server/service.py", "read_search", "scim2-server: query read, filter parsed"),
    ("scim2_server/utils.py", "parametrize", "scim2-server: generic models parametrized"),
    ("scim2_server/service.py", "get_model", "scim2-server: generic models parametrized"),
    ("scim2_server/service.py", "publish", "scim2-server: resources published (locations)"),
    ("scim2_server/", "", "scim2-server: handler, routing, ASGI adapter"),
    ("starlette/", "", "HTTP: starlette"),
    ("uvicorn/", "", "HTTP: uvicorn + h11"),
    ("h11/", "", "HTTP: uvicorn + h11"),
    ("anyio/", "", "thread hand-off (anyio, threading)"),
    ("threading.py", "", "thread hand-off (anyio, threading)"),
    ("concurrent/", "", "thread hand-off (anyio, threading)"),
    ("asyncio/", "", "event loop (asyncio, sockets)"),
]


def layers(collapsed: str) -> list[tuple[str, float]]:
    """py-spy's raw samples charged to the layers above, as shares, largest first."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        layer = "other"
        for frame in reversed(stack.split(";")):
            hit = next((name for path, fn, name in _LAYERS if path in frame and fn in frame), None)
            if hit is not None:
                layer = hit
                break
        counts[layer] = counts.get(layer, 0) + count
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return [(name, round(n / total, 4)) for name, n in ranked] if total else []


# -- the report ----------------------------------------------------------------------------


def _report(
    parameters: dict[str, Any],
    sizes: list[Size],
    notes: dict[str, str],
    profile: dict[str, Any] | None,
    total: float,
) -> dict[str, Any]:
    by_size: dict[str, Any] = {}
    for size in sizes:
        servers: dict[str, Any] = {}
        for (server, scenario), m in size.results.items():
            servers.setdefault(server, {})[scenario] = m.as_dict()
        for server, memory in size.memory.items():
            servers.setdefault(server, {})["memory"] = memory
        by_size[str(size.users)] = {
            "load": size.load,
            "servers": servers,
            "ratios": _ratios(size),
            "targets": _targets(size),
            "notes": size.notes,
        }
    return {
        "benchmark": "scim",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "environment": environment(_MEASURED, scim2_server=_version("scim2-server")),
        "total_seconds": round(total, 1),
        "sizes": by_size,
        "notes": notes,
        "profile": profile,
    }


def _ratios(size: Size) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for scenario in scimclients.SCENARIOS:
        reference = size.results.get(("reference", scenario))
        for key in ("gateway-sqlite", "gateway-pg"):
            gateway = size.results.get((key, scenario))
            if gateway is None or reference is None or not reference.rate:
                continue
            ratio = gateway.rate / reference.rate
            ratios[f"{key}/reference {scenario}"] = {"ratio": round(ratio, 2), "ahead": ratio > 1}
    return ratios


def _targets(size: Size) -> dict[str, Any]:
    """The issue's figures for the filter GET (judged at TARGET_SIZE; shown at every size)."""
    targets: dict[str, Any] = {}
    for key in ("gateway-sqlite", "gateway-pg"):
        m = size.results.get((key, "filter"))
        if m is None:
            continue
        p99 = Measurement(latencies=m.latencies()).percentile_ms(99)
        targets[key] = {
            "filter_rate_met": m.rate >= TARGET_RATE,
            "filter_p99_met": p99 <= TARGET_P99_MS,
            "judged": size.users == TARGET_SIZE,
        }
    return targets


def render_markdown(report: dict[str, Any]) -> str:
    """The tables of a report, as Markdown."""
    p, env = report["parameters"], report["environment"]
    lines = [
        f"# SCIM benchmark, {report['at']}",
        "",
        f"{p['connections']} connections over {p['client_processes']} client processes,"
        f" {p['seconds']:g} s measured after {p['warmup_seconds']:g} s of warm-up per server and"
        f" scenario; {env['cpus']} CPUs shared by clients and servers; load average"
        f" {env.get('load_average_1m_at_start', '?')} at start; commit {env['commit']}"
        f"{' (+ uncommitted changes)' if env['uncommitted_changes'] else ''};"
        f" scim2-server {env.get('scim2_server')}; total {report['total_seconds']:.0f} s.",
        "",
        "| users | scenario | server | req/s | p50 ms | p99 ms | errors | conn/req"
        " | server CPU ms/req | RSS MiB start / peak | gateway/reference |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for users, size in report["sizes"].items():
        for scenario in scimclients.SCENARIOS:
            for server in ("reference", "gateway-sqlite", "gateway-pg"):
                row = size["servers"].get(server, {}).get(scenario)
                if row is None:
                    continue
                memory = size["servers"][server].get("memory", {})
                ratio = size["ratios"].get(f"{server}/reference {scenario}")
                rate = f"{row['requests_per_second']:,.0f}"
                if scenario == "cycle":
                    rate += f" ({row['by_kind']['cycle']['per_second']:,.0f} cycles/s)"
                errors = sum(row["errors"].values())
                lines.append(
                    f"| {int(users):,} | {SCENARIO_TITLES[scenario]} | {server} | {rate}"
                    f" | {_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])}"
                    f" | {errors if not errors else f'**{errors}**'}"
                    f" | {_fmt(row['connections_per_request'])}"
                    f" | {_fmt(row['server_cpu_ms_per_request'])}"
                    f" | {_fmt(memory.get('rss_mib_at_start'), 0)}"
                    f" / {_fmt(memory.get('peak_rss_mib'), 0)}"
                    f" | {'' if ratio is None else _ratio_text(ratio)} |"
                )
    lines += [
        "",
        "Latency by request of the cycle (p50 / p99 ms):",
        "",
        "| users | server | POST | PATCH | whole cycle |",
        "|---:|---|---:|---:|---:|",
    ]
    for users, size in report["sizes"].items():
        for server in ("reference", "gateway-sqlite", "gateway-pg"):
            row = size["servers"].get(server, {}).get("cycle")
            if row is None:
                continue
            kinds = row["by_kind"]
            cells = [
                f"{_fmt(kinds[k]['p50_ms'])} / {_fmt(kinds[k]['p99_ms'])}"
                for k in ("create", "disable", "cycle")
            ]
            lines.append(f"| {int(users):,} | {server} | {' | '.join(cells)} |")
    verdicts = []
    for users, size in report["sizes"].items():
        for key, target in size["targets"].items():
            if target["judged"]:
                row = size["servers"][key]["filter"]
                verdicts.append(
                    f"- {key} at {int(users):,} users: {row['requests_per_second']:,.0f} filter"
                    f" GETs/s (target >= {TARGET_RATE:,.0f}:"
                    f" {'met' if target['filter_rate_met'] else 'MISSED'}), p99"
                    f" {_fmt(row['p99_ms'])} ms (target <= {TARGET_P99_MS:g}:"
                    f" {'met' if target['filter_p99_met'] else 'MISSED'})"
                )
    for key in ("gateway-sqlite", "gateway-pg"):
        for scenario in scimclients.SCENARIOS:
            ratios = [
                size["ratios"][f"{key}/reference {scenario}"]
                for size in report["sizes"].values()
                if f"{key}/reference {scenario}" in size["ratios"]
            ]
            if ratios:
                ahead = all(r["ahead"] for r in ratios)
                verdicts.append(
                    f"- {key} ahead of the reference at every size, {SCENARIO_TITLES[scenario]}:"
                    f" {'yes' if ahead else 'NO'}"
                    f" ({', '.join(format(r['ratio'], '.2f') for r in ratios)})"
                )
    if verdicts:
        lines += ["", "Targets:", "", *verdicts]
    notes = [f"- {k}: {v}" for k, v in report["notes"].items()]
    for users, size in report["sizes"].items():
        notes += [f"- {int(users):,} users, {k}: {v}" for k, v in size["notes"].items()]
        for server, load in size["load"].items():
            if "by_method" in load:
                ways = ", ".join(f"{n:,} {m}" for m, n in load["by_method"].items() if n)
                notes.append(
                    f"- {int(users):,} users, {server} loaded: {ways} in {load['seconds']} s"
                )
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def _ratio_text(ratio: dict[str, Any]) -> str:
    return f"**{ratio['ratio']:.2f}**" + ("" if ratio["ahead"] else " (behind)")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _per(value: float | None, count: float, scale: float = 1.0) -> float | None:
    return None if value is None or not count else round(value * scale / count, 3)


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 3)


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version(distribution)
    return None
