"""Bulk sync of a directory source against a plain paged read of it (issue 6, "Speed").

A throwaway slapd is loaded with N bench users (plus the seed's five under ou=people); one
`ldap` source on it, as the tests' `corp` source (tests/gateway/realgw.py). Three
measurements, each in a fresh child process of its own (bench/bulkrun.py), so that every peak
RSS belongs to one of them:

  plain   ldap3 alone reads every entry of the source's scope page by page (RFC 2696): the
          same server, service account, filter, attributes (gateway/directory/attributes.py
          `requested_attributes`), page size and connection options as the gateway's
          connector, and nothing done with the entries but counting them;
  first   the gateway's first import into an empty store: `gateway.runtime.main.build(config)`, then
          `runtime.jobs.start(Actor('bench', SUPER_ADMIN), JobKind.BULK, 'corp')` and
          `runtime.jobs.wait(...)`;
  re-run  the same job again on the store the first left, with nothing changed upstream.

On SQLite (a file in a temp dir) and on PostgreSQL when it answers (a fresh schema, dropped
afterwards); each round (plain, first, re-run per store) repeated `--repeat` times, a new
store each time; the medians are reported. Then a cProfile profile of a first import and a
re-run at 10,000 users, every thread profiled (bench/bulkrun.py `_ThreadProfiles`).

Targets (issue 6): first import <= 1.5 x the plain read, no-change re-run <= 1.2 x, peak RSS
< 300 MB.
"""

import argparse
import contextlib
import json
import math
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap3

from bench.auth import fresh_store
from bench.machine import cpu_seconds, environment, first_line
from bench.result import Result
from bench.users import generate, load
from gateway.config import LdapSource
from gateway.directory.attributes import requested_attributes
from gateway.directory.directory import PAGED_RESULTS_OID
from gateway.directory.filters import scope_filter
from store.db import make_engine
from store.migrate import upgrade
from tests.gateway.realgw import SLAPD_SOURCE, gateway_config, slapd_source
from tests.servers.slapd import Slapd

SUMMARY = "bulk sync (first import, no-change re-run) against a plain ldap3 paged read"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_USERS, QUICK_USERS = 100_000, 10_000
DEFAULT_REPEAT, QUICK_REPEAT = 3, 1
PROFILE_USERS = 10_000
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Most a measurement may be slower than the plain read (issue 6).
TARGETS = {"first": 1.5, "rerun": 1.2}
#: Peak RSS each gateway process must stay under: 300 MB (decimal, the stricter reading).
RSS_TARGET_BYTES = 300_000_000
KINDS = ("plain", "first", "rerun")
TITLES = {"plain": "plain read", "first": "first import", "rerun": "no-change re-run"}
STORE_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_MEASURED = ["gateway", "store"]
_BUSY_LOAD = 0.5
_MIB = 1024 * 1024
#: Rows of each profile table.
_TOP = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--users", type=int, help=f"bench users loaded into slapd (default {DEFAULT_USERS:,})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_USERS:,} users, {QUICK_REPEAT} round (under 2 minutes)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help=f"rounds of the three measurements; medians reported (default {DEFAULT_REPEAT},"
        f" --quick {QUICK_REPEAT})",
    )
    parser.add_argument(
        "--stores",
        default="sqlite,postgresql",
        help="comma-separated (default sqlite,postgresql; PostgreSQL is skipped, and said so,"
        " when its server does not answer)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("IDGATE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL server; a fresh schema is made in it per round and dropped afterwards",
    )
    parser.add_argument(
        "--page-size", type=int, help="the source's page_size (default: the gateway's, 500)"
    )
    parser.add_argument(
        "--profile-users",
        type=int,
        default=PROFILE_USERS,
        help=f"users of the profiled runs (default {PROFILE_USERS:,}; its own slapd when it"
        " differs from --users)",
    )
    parser.add_argument(
        "--profile-stores",
        help="stores of the cProfile runs, comma-separated (default: every measured store;"
        " --quick: sqlite, to stay under 2 minutes)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds one measurement may take"
    )
    parser.add_argument("--no-save", action="store_true", help=f"write nothing to {RESULTS}")


# -- the run -------------------------------------------------------------------------------


class MeasurementFailed(Exception):
    """A child process failed, or its job did not do what the measurement claims."""


@dataclass
class Backend:
    store: str
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    problems: list[str] = field(default_factory=list)

    def median(self, kind: str, key: str = "seconds") -> float | None:
        values = [run[key] for run in self.runs[kind] if run.get(key) is not None]
        return statistics.median(values) if values else None


class Bench:
    """The slapd, the source on it, and the child processes measuring against it."""

    def __init__(self, slapd: Slapd, users: int, page_size: int | None, timeout: float) -> None:
        self.slapd = slapd
        self.users = users
        self.timeout = timeout
        self.source = _source_table(slapd, users, page_size)
        # Parsed as the gateway will parse it, for what the plain read must match; this
        # store URL is only validated, never opened.
        parsed = gateway_config("sqlite:////tmp/unused.db", self.source).sources[0]
        assert isinstance(parsed, LdapSource)
        self.parsed = parsed
        #: Entries of the source's scope: the bench users and the seed's under ou=people.
        self.seed_people = sum(
            1 for u in slapd.users.values() if u.dn.lower().endswith(slapd.people_dn.lower())
        )
        self.entries = users + self.seed_people
        self._workdir = Path(tempfile.mkdtemp(prefix="idgate-bulksync-"))
        self._count = 0

    def plain(self) -> dict[str, Any]:
        source = self.parsed
        host, _, port = source.urls[0].removeprefix("ldap://").partition(":")
        spec = {
            "mode": "plain",
            "host": host,
            "port": int(port),
            "bind_dn": source.bind_dn,
            "bind_password": source.bind_password.get_secret_value(),
            "roots": list(source.roots),
            "filter": scope_filter(source.user_object_class, source.user_filter),
            "attributes": list(requested_attributes(source)),
            "page_size": source.page_size,
            "time_limit": max(1, math.ceil(source.operation_timeout_seconds)),
            "connect_timeout": source.connect_timeout_seconds,
            "receive_timeout": max(1, math.ceil(source.operation_timeout_seconds)),
            "operation_timeout": source.operation_timeout_seconds,
            "paged_oid": PAGED_RESULTS_OID,
        }
        run = self._child(spec)
        if run["entries"] != self.entries:
            raise MeasurementFailed(f"plain read got {run['entries']} entries, not {self.entries}")
        return run

    def bulk(self, store_url: str, profile: Path | None = None) -> dict[str, Any]:
        config = {"store": {"url": store_url}, "sources": [self.source]}
        spec: dict[str, Any] = {
            "mode": "bulk",
            "config": config,
            "source": SLAPD_SOURCE,
            "timeout": self.timeout,
            "profile": str(profile) if profile is not None else None,
        }
        run = self._child(spec)
        if run["state"] != "succeeded":
            raise MeasurementFailed(f"job {run['job']} ended {run['state']}: {run['error']}")
        return run

    def _child(self, spec: dict[str, Any]) -> dict[str, Any]:
        self._count += 1
        spec_path = self._workdir / f"spec-{self._count}.json"
        result_path = self._workdir / f"result-{self._count}.json"
        spec_path.write_text(json.dumps(spec))
        code = _code_version()
        slapd_cpu = cpu_seconds(self.slapd.pid)
        began = time.perf_counter()
        try:
            completed = subprocess.run(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "bench.bulkrun", str(spec_path), str(result_path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                timeout=self.timeout + 60,
            )
        except subprocess.TimeoutExpired as exc:
            raise MeasurementFailed(f"{spec['mode']} took more than {self.timeout:g} s") from exc
        if completed.returncode != 0 or not result_path.exists():
            tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
            raise MeasurementFailed(f"{spec['mode']} exited {completed.returncode}:\n{tail}")
        run: dict[str, Any] = json.loads(result_path.read_text())
        after = cpu_seconds(self.slapd.pid)
        run["process_seconds"] = time.perf_counter() - began
        # Others commit to this checkout: which code this child imported (it was at its start).
        run["code"] = code
        run["slapd_cpu_seconds"] = (
            after - slapd_cpu if after is not None and slapd_cpu is not None else None
        )
        run["load_average_1m"] = round(os.getloadavg()[0], 2)
        run["stderr"] = completed.stderr.strip().splitlines()[-5:]
        return run

    def close(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)  # the specs hold the service password


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    """The whole run: its tables printed, its files written (unless `--no-save`), its report
    returned."""
    users = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    notes: dict[str, str] = {}
    if "postgresql" in stores:
        reason, settings = _postgres(args.database_url)
        if reason is not None:
            stores.remove("postgresql")
            notes["postgresql"] = f"not measured: PostgreSQL did not answer ({reason})"
            print(f"note: {notes['postgresql']}")
        else:
            notes["postgresql"] = f"server settings: {settings}"
    load_at_start = os.getloadavg()
    if load_at_start[0] > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start[0]:.2f} before the start: other work shares"
            " the CPUs, so the figures will be low and noisy"
        )
    code_at_start = environment(_MEASURED)
    began = time.perf_counter()
    backends = {store: Backend(store) for store in stores}
    profiles: dict[str, Any] = {}
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = RESULTS / f"bulksync-{stamp}.json"
    parameters: dict[str, Any] = {
        "users": users,
        "repeat": repeat,
        "stores": stores,
        "quick": args.quick,
        "profile_users": None if args.no_profile else args.profile_users,
    }

    def reported() -> dict[str, Any]:
        report = _report(parameters, backends, profiles, notes, time.perf_counter() - began)
        report["environment"]["load_average_at_start"] = [round(x, 2) for x in load_at_start]
        versions = sorted(
            {run["code"] for b in backends.values() for runs in b.runs.values() for run in runs}
        )
        if len(versions) > 1:
            report["notes"]["code"] = (
                f"the measured code changed during the run (commits landed): the measurements"
                f" ran on {', '.join(versions)} (each run's `code` in the JSON)"
            )
        elif code_at_start["commit"] != report["environment"]["commit"]:
            report["notes"]["code"] = (
                f"the commit moved from {code_at_start['commit']} to"
                f" {report['environment']['commit']} during the run"
            )
        return report

    # SIGTERM ends the run as Ctrl-C does: the child is killed, slapd stopped, the
    # PostgreSQL schema dropped (the default action would leave them behind).
    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.ExitStack() as stack:
        bench = _start(stack, users, args)
        parameters["entries"] = bench.entries
        parameters["page_size"] = bench.parsed.page_size
        notes["source"] = (
            f"user_limit {bench.source['user_limit']:,} (N + 1,000, at least the default"
            f" 100,000, which would leave seed users out at N = 100,000); connect and"
            f" operation timeouts the gateway's defaults; page_size"
            f" {bench.parsed.page_size}; {len(requested_attributes(bench.parsed))} attributes"
            f" requested: {', '.join(requested_attributes(bench.parsed))}"
        )
        for round_ in range(1, repeat + 1):
            for store in stores:
                print(f"\n== round {round_}/{repeat}, {STORE_TITLES[store]} ==")
                _measure_round(bench, backends[store], args.database_url)
            if not args.no_save:
                # What is measured so far, in case a later round does not finish.
                RESULTS.mkdir(exist_ok=True)
                path.write_text(json.dumps(reported(), indent=2) + "\n")
        if not args.no_profile:
            profile_bench = bench
            if args.profile_users != users:
                profile_bench = _start(stack, args.profile_users, args)
            profile_dir = RESULTS if not args.no_save else Path(tempfile.mkdtemp())
            profile_dir.mkdir(exist_ok=True)
            chosen = args.profile_stores or ("sqlite" if args.quick else ",".join(stores))
            for store in [s for s in chosen.split(",") if s in stores]:
                print(f"\n== cProfile, {args.profile_users:,} users, {STORE_TITLES[store]} ==")
                try:
                    profiles[store] = _profile(
                        profile_bench, store, args.database_url, profile_dir, stamp
                    )
                except MeasurementFailed as exc:
                    notes[f"profile {store}"] = f"not profiled: {exc}"
                    print(f"ERROR: {notes[f'profile {store}']}")
    report = reported()
    markdown = render_markdown(report)
    print()
    print(markdown)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown + "\n")
        print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    problems = [p for backend in backends.values() for p in backend.problems]
    failed = problems or any(not b.runs["rerun"] for b in backends.values())
    return Result(1 if failed else 0, report)


def _code_version() -> str:
    """The commit, `+changes` when the measured folders differ from it."""
    commit = first_line(["git", "rev-parse", "--short", "HEAD"]) or "?"
    dirty = first_line(["git", "status", "--porcelain", "--untracked-files=no", "--", *_MEASURED])
    return f"{commit}+changes" if dirty else commit


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _start(stack: contextlib.ExitStack, users: int, args: argparse.Namespace) -> Bench:
    slapd = Slapd(seed_users=True)
    stack.callback(slapd.close)
    slapd.start()
    took = load(slapd, generate(users, slapd.people_dn))
    print(f"slapd {slapd.url}: loaded {users:,} users with slapadd in {took:.1f} s")
    bench = Bench(slapd, users, args.page_size, args.timeout)
    stack.callback(bench.close)
    return bench


def _source_table(slapd: Slapd, users: int, page_size: int | None) -> dict[str, Any]:
    """The tests' `corp` source on this slapd, with the gateway's default timeouts (the
    tests' 1 s are for failing fast) and a user limit above everything it holds."""
    source = slapd_source([slapd.url], bind_dn=slapd.service_dn)
    source["bind_password"] = slapd.service_password
    del source["connect_timeout_seconds"], source["operation_timeout_seconds"]
    source["user_limit"] = max(100_000, users + 1_000)
    if page_size is not None:
        source["page_size"] = page_size
    return source


@contextlib.contextmanager
def _store(kind: str, database_url: str) -> Iterator[str]:
    """A fresh store at head: SQLite in a temp dir, or a PostgreSQL schema dropped after."""
    with fresh_store(kind, database_url if kind == "postgresql" else None) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


def _measure_round(bench: Bench, backend: Backend, database_url: str) -> None:
    """Plain read, first import, re-run: each in its own process; the last two on one store."""
    try:
        plain = bench.plain()
        backend.runs["plain"].append(plain)
        _say("plain", plain)
        with _store(backend.store, database_url) as url:
            first = bench.bulk(url)
            _check_first(bench, first)
            backend.runs["first"].append(first)
            _say("first", first)
            rerun = bench.bulk(url)
            _check_rerun(bench, first, rerun)
            backend.runs["rerun"].append(rerun)
            _say("rerun", rerun)
    except MeasurementFailed as exc:
        backend.problems.append(str(exc))
        print(f"ERROR {STORE_TITLES[backend.store]}: {exc}")


def _check_first(bench: Bench, run: dict[str, Any]) -> None:
    """Every entry read; every bench user added; nothing else but the seed's not-added."""
    c = run["counts"]
    if c["read"] != bench.entries or c["added"] + c["not_synchronized"] != bench.entries:
        raise MeasurementFailed(f"first import counts {c}: not all {bench.entries} entries")
    if c["added"] < bench.users or c["updated"] or c["unchanged"]:
        raise MeasurementFailed(f"first import counts {c}: not all {bench.users} users added")


def _check_rerun(bench: Bench, first: dict[str, Any], run: dict[str, Any]) -> None:
    """Every entry read again, every record the first added unchanged, nothing written."""
    c, added = run["counts"], first["counts"]["added"]
    if c["read"] != bench.entries or c["unchanged"] != added or c["updated"] or c["added"]:
        raise MeasurementFailed(f"re-run counts {c}: expected {added} unchanged, 0 updated")


def _say(kind: str, run: dict[str, Any]) -> None:
    counts = run.get("counts")
    shown = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) if counts else ""
    what = f"{run['entries']:,} entries in {run['pages']} pages" if kind == "plain" else shown
    split = run.get("thread_cpu_seconds")
    if split:
        what += (
            f"; CPU reader {split.get('reader', 0):.2f} s, writer {split.get('writer', 0):.2f} s"
        )
    print(
        f"  {TITLES[kind]:<17} {run['seconds']:8.2f} s  CPU {run['cpu_seconds']:7.2f} s"
        f"  slapd {_fmt(run['slapd_cpu_seconds'])} s  peak RSS {run['peak_rss_mib']:6.1f} MiB"
        f"  load {run['load_average_1m']:.2f}  ({what})"
    )


# -- the profile ---------------------------------------------------------------------------


def _profile(
    bench: Bench, store: str, database_url: str, directory: Path, stamp: str
) -> dict[str, Any]:
    """A first import and a re-run with every thread under cProfile; their top functions."""
    profiled: dict[str, Any] = {"users": bench.users, "runs": {}}
    with _store(store, database_url) as url:
        for kind in ("first", "rerun"):
            prefix = directory / f"bulksync-{stamp}-{store}-{kind}"
            run = bench.bulk(url, profile=prefix)
            _say(kind, run)
            threads = run["threads"]
            files = {t["role"]: Path(t["file"]) for t in threads if "file" in t}
            profiled["runs"][kind] = {
                "seconds_under_profiler": round(run["seconds"], 2),
                "counts": run["counts"],
                "threads": [
                    {k: _round(v) if isinstance(v, float) else v for k, v in t.items()}
                    for t in threads
                ],
                "files": [path.name for path in files.values()] if directory == RESULTS else [],
                **top_functions(files, run["seconds"]),
            }
            if directory != RESULTS:
                for path in files.values():
                    path.unlink()
    return profiled


def top_functions(files: dict[str, Path], wall_seconds: float) -> dict[str, Any]:
    """The `_TOP` functions of the job's writer and reader threads, by own and by cumulative
    time (each row names its thread; the threads run at the same time)."""
    wrappers = ("bench/bulkrun.py", "threading.py")
    rows: list[dict[str, Any]] = []
    for role, path in files.items():
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        for key, (primitive, calls, own, cumulative, _callers) in stats.items():
            rows.append(
                {
                    "thread": role,
                    "function": _where(key),
                    "calls": calls if calls == primitive else f"{calls}/{primitive}",
                    "own_s": round(own, 3),
                    "cumulative_s": round(cumulative, 3),
                    "share_of_wall": round(cumulative / wall_seconds, 4),
                    "wrapper": any(w in key[0] for w in wrappers),
                }
            )
    by_own = sorted(rows, key=lambda row: -row["own_s"])[:_TOP]
    by_cumulative = sorted(
        (row for row in rows if not row["wrapper"]), key=lambda row: -row["cumulative_s"]
    )[:_TOP]
    for row in rows:
        del row["wrapper"]
    return {"by_own_time": by_own, "by_cumulative_time": by_cumulative}


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function  # a built-in: "<method 'execute' of 'sqlite3.Cursor' objects>"
    for marker in ("site-packages/", "lib/python3."):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            if marker == "lib/python3.":
                filename = filename.split("/", 1)[1]
            break
    else:
        with contextlib.suppress(ValueError):
            filename = str(Path(filename).relative_to(ROOT))
    return f"{filename}:{line} {function}"


# -- the report ----------------------------------------------------------------------------


def _report(
    parameters: dict[str, Any],
    backends: dict[str, Backend],
    profiles: dict[str, Any],
    notes: dict[str, str],
    total: float,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for store, backend in backends.items():
        medians = {
            kind: {
                "seconds": _round(backend.median(kind)),
                "cpu_seconds": _round(backend.median(kind, "cpu_seconds")),
                "slapd_cpu_seconds": _round(backend.median(kind, "slapd_cpu_seconds")),
                "peak_rss_mib": _round(backend.median(kind, "peak_rss_mib")),
                "max_peak_rss_mib": max(
                    (r["peak_rss_mib"] for r in backend.runs[kind]), default=None
                ),
            }
            for kind in KINDS
        }
        verdicts: dict[str, Any] = {}
        for kind, most in TARGETS.items():
            ratio = _ratio(medians, kind, "seconds")
            verdicts[kind] = {
                "ratio": _round(ratio),
                "target": most,
                "met": None if ratio is None else ratio <= most,
                # Beside it, not judged: CPU seconds over the plain read's, which other work
                # on the machine moves less than the wall clock.
                "cpu_ratio": _round(_ratio(medians, kind, "cpu_seconds")),
            }
        peaks = [medians[k]["max_peak_rss_mib"] for k in ("first", "rerun")]
        peak = max((p for p in peaks if p is not None), default=None)
        verdicts["rss"] = {
            "peak_mib": peak,
            "target_mib": round(RSS_TARGET_BYTES / _MIB, 1),
            "met": None if peak is None else peak * _MIB < RSS_TARGET_BYTES,
        }
        results[store] = {
            "medians": medians,
            "targets": verdicts,
            "runs": {kind: [_run_summary(run) for run in backend.runs[kind]] for kind in KINDS},
            "problems": backend.problems,
        }
    return {
        "benchmark": "bulksync",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "environment": environment(_MEASURED, ldap3=ldap3.__version__),
        "total_seconds": round(total, 1),
        "backends": results,
        "profiles": profiles,
        "notes": notes,
    }


def _ratio(medians: dict[str, dict[str, Any]], kind: str, key: str) -> float | None:
    value, plain = medians[kind][key], medians["plain"][key]
    return value / plain if value is not None and plain else None


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "seconds", "cpu_seconds", "slapd_cpu_seconds", "process_seconds",
        "import_and_build_seconds", "rss_mib_at_start", "rss_mib_before", "peak_rss_mib",
        "ru_maxrss_mib", "load_average_1m", "entries", "pages", "job", "state", "job_seconds",
        "counts", "thread_cpu_seconds", "code",
    )  # fmt: skip
    summary = {k: _round(run[k]) if isinstance(run[k], float) else run[k] for k in keep if k in run}
    if run.get("stderr"):
        summary["stderr_tail"] = run["stderr"]  # warnings the child logged
    return summary


def render_markdown(report: dict[str, Any]) -> str:
    p, env = report["parameters"], report["environment"]
    load = env.get("load_average_at_start", ["?"] * 3)
    lines = [
        f"# Bulk sync benchmark, {report['at']}",
        "",
        f"{p['users']:,} bench users + {p['entries'] - p['users']} seed entries under"
        f" ou=people; page size {p['page_size']}; median of {p['repeat']}"
        f" round{'s' if p['repeat'] != 1 else ''}, each measurement in a fresh process;"
        f" {env['cpus']} CPUs shared with slapd (and PostgreSQL); load average"
        f" {' / '.join(str(x) for x in load)} (1/5/15 min) at start; commit {env['commit']}"
        f"{' (+ uncommitted changes)' if env['uncommitted_changes'] else ''};"
        f" Python {env['python']}, ldap3 {env.get('ldap3')};"
        f" total {report['total_seconds']:.0f} s.",
        "",
        "| users | backend | plain read s | first import s (x plain) | no-change re-run s"
        " (x plain) | CPU s plain / first / re-run (x plain) | peak RSS MiB plain / first /"
        " re-run | first ≤ 1.5 x | re-run ≤ 1.2 x | RSS < 300 MB |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for store, result in report["backends"].items():
        m, t = result["medians"], result["targets"]
        rss = " / ".join(_fmt(m[k]["max_peak_rss_mib"], 0) for k in KINDS)
        cpu = " / ".join(_fmt(m[k]["cpu_seconds"], 1) for k in KINDS)
        cpu_ratios = ", ".join(_fmt(_ratio(m, k, "cpu_seconds")) for k in TARGETS)
        lines.append(
            f"| {p['users']:,} | {STORE_TITLES[store]} | {_fmt(m['plain']['seconds'])}"
            f" | {_fmt(m['first']['seconds'])} ({_fmt(t['first']['ratio'])} x)"
            f" | {_fmt(m['rerun']['seconds'])} ({_fmt(t['rerun']['ratio'])} x)"
            f" | {cpu} ({cpu_ratios}) | {rss} | {_verdict(t['first']['met'])}"
            f" | {_verdict(t['rerun']['met'])}"
            f" | {_verdict(t['rss']['met'])} |"
        )
    lines += [
        "",
        "Every run (wall s; CPU s of the process over the measured part, and of the job's"
        " reader and writer threads; slapd's CPU s; peak RSS MiB; 1-min load average at its"
        " end; the job's counts; the commit the child imported):",
        "",
        "| backend | measurement | round | s | CPU s | CPU s reader / writer | slapd CPU s"
        " | peak RSS MiB | load | counts | code |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for store, result in report["backends"].items():
        for kind in KINDS:
            for index, run in enumerate(result["runs"][kind], 1):
                if kind == "plain":
                    counts = f"{run['entries']:,} entries, {run['pages']} pages"
                else:
                    counts = ", ".join(f"{k} {v:,}" for k, v in run["counts"].items() if v)
                split = run.get("thread_cpu_seconds") or {}
                threads = (
                    f"{_fmt(split.get('reader'))} / {_fmt(split.get('writer'))}" if split else ""
                )
                lines.append(
                    f"| {STORE_TITLES[store]} | {TITLES[kind]} | {index} | {_fmt(run['seconds'])}"
                    f" | {_fmt(run['cpu_seconds'])} | {threads}"
                    f" | {_fmt(run.get('slapd_cpu_seconds'))}"
                    f" | {_fmt(run['peak_rss_mib'], 1)} | {_fmt(run['load_average_1m'])}"
                    f" | {counts} | {run.get('code', '')} |"
                )
    for store, profile in report["profiles"].items():
        for kind, prof in profile["runs"].items():
            threads = ", ".join(
                f"{t['role']} {_fmt(t.get('profiled_seconds'))} s wall /"
                f" {_fmt(t.get('cpu_seconds'))} s CPU"
                for t in prof["threads"]
                if t["role"] in ("writer", "reader")
            )
            files = ", ".join(f"`bench/results/{name}`" for name in prof["files"])
            lines += [
                "",
                f"## cProfile: {TITLES[kind]}, {profile['users']:,} users, {STORE_TITLES[store]}",
                "",
                f"{prof['seconds_under_profiler']:.1f} s under the profiler. The job's two"
                f" threads, each under its own profiler (wall clock: waits and GIL waits"
                f" count): {threads}." + (f" Raw statistics: {files}." if files else ""),
                "",
                "The two threads share one GIL and run in turn: a C call that lets the GIL go"
                " (sqlite3's `fetchall`/`executemany`/`execute`, `posix.urandom` in `uuid4`,"
                " psycopg's `wait`, the queue's `acquire`) is charged with the time the other"
                " thread ran before this one got the GIL back. Those rows are mostly waiting;"
                " the CPU seconds per thread say where the work is.",
                "",
                f"Top {_TOP} by own time:",
                "",
                "| own s | cumulative s | calls | thread | function |",
                "|---:|---:|---:|---|---|",
                *(
                    f"| {r['own_s']:.3f} | {r['cumulative_s']:.3f} | {r['calls']}"
                    f" | {r['thread']} | `{r['function']}` |"
                    for r in prof["by_own_time"]
                ),
                "",
                f"Top {_TOP} by cumulative time (the bench wrapper and threading bootstrap left"
                " out; share of the job's wall time under the profiler):",
                "",
                "| cumulative s | of wall | own s | calls | thread | function |",
                "|---:|---:|---:|---:|---|---|",
                *(
                    f"| {r['cumulative_s']:.3f} | {r['share_of_wall']:.0%} | {r['own_s']:.3f}"
                    f" | {r['calls']} | {r['thread']} | `{r['function']}` |"
                    for r in prof["by_cumulative_time"]
                ),
            ]
    notes = [f"- {k}: {v}" for k, v in report["notes"].items()]
    for store, result in report["backends"].items():
        notes += [f"- {STORE_TITLES[store]}: **{problem}**" for problem in result["problems"]]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**MISSED**")


def _postgres(url: str) -> tuple[str | None, str]:
    """(None, its relevant settings) when the server answers, else (why not, "")."""
    from sqlalchemy import create_engine, text

    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
            autovacuum = connection.execute(text("SHOW autovacuum")).scalar()
            fsync = connection.execute(text("SHOW synchronous_commit")).scalar()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}", ""
    finally:
        engine.dispose()
    return None, f"version {version}, autovacuum {autovacuum}, synchronous_commit {fsync}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
