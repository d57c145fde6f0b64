"""Every benchmark side by side, from one command: `python -m bench all [--quick] [--profile]`.

Runs, one after the other and each with its peer measured in the same run:

  auth      `Authenticator.authenticate()` in this process beside plain ldap3 binds (slapd);
  ldap      the LDAP front beside direct slapd and OpenLDAP's back-ldap proxy, then the three
            of them again at several numbers of clients (the plot);
  scim      the SCIM front (SQLite; and PostgreSQL when it answers, full mode) beside
            scim2-server's reference server;
  bulksync  a bulk sync (first import, no-change re-run) beside a plain ldap3 paged read.

Each is the benchmark's own code (`<module>.measure(args)`, the same as `python -m bench
<name>`), given the options of the mode; their reports are gathered into ONE table: a row per
scenario and target, with the peer, the rate, p50/p99, the peak RSS of the measured process,
the ratio to the peer and the issue's target and verdict. Written to
bench/results/all-<UTC timestamp>.md and .json, with the plot of the LDAP front's throughput
against concurrency as .png beside them (matplotlib, Agg backend).

`--quick` is a sanity check in under two minutes: the same real servers and processes, a few
hundred users, windows of 1 s, SQLite only, three concurrency points. The full mode is
each benchmark's own default sizes (10,000 and 100,000 users; about an hour here).
`--profile` samples the gateway with py-spy in the two hot paths: a bind inside the JIT window
(`ldap`) and a SCIM filter GET (`scim`, at its largest size).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import auth, bulksync, ldap, scim
from bench.machine import environment
from bench.pyspy import MODES, py_spy
from bench.result import Result

SUMMARY = "every benchmark with its peer, in one table (Markdown, JSON) and one plot"
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: In the order they run: `auth` first, so that its peak RSS (of this process, where the
#: gateway runtime runs) is its own and not a later benchmark's.
BENCHMARKS: dict[str, ModuleType] = {
    "auth": auth,
    "ldap": ldap,
    "scim": scim,
    "bulksync": bulksync,
}
#: The options each benchmark gets in each mode (before `--set`, which may override them).
OPTIONS: dict[str, dict[str, list[str]]] = {
    "quick": {
        "auth": ["--users", "300", "--seconds", "1"],
        "ldap": ["--users", "300", "--seconds", "1", "--sweep", "1,4,16", "--sweep-seconds", "1"],
        "scim": ["--sizes", "200", "--seconds", "1", "--warmup", "0.3", "--stores", "sqlite"],
        "bulksync": ["--users", "1000", "--repeat", "1", "--stores", "sqlite", "--no-profile"],
    },
    "full": {
        "auth": [],
        "ldap": ["--sweep", "1,2,4,8,16", "--sweep-seconds", "5"],
        "scim": [],
        "bulksync": [],
    },
}
#: Benchmarks that take `--profile` (py-spy on the gateway): the two hot paths.
PROFILED = ("ldap", "scim")
SWEEP_TARGETS = {
    "direct": "direct slapd",
    "back-ldap": "back-ldap proxy",
    "gateway": "gateway",
    "due": "gateway, every bind JIT-due",
}
_BUSY_LOAD = 0.5
_MEASURED = ["gateway", "store", "ldapproxy", "scim"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, short windows, SQLite only, 3 concurrency points (under 2 minutes)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all of them)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="gil",
        choices=MODES,
        help="py-spy profiles of the two hot paths: a bind in the JIT window (ldap) and a SCIM"
        " filter GET (scim); the raw samples are written beside the table",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="extra options for one benchmark, after the mode's (the last one wins), e.g."
        " --set 'bulksync=--users 20000 --repeat 1'",
    )
    parser.add_argument("--no-save", action="store_true", help=f"write nothing to {RESULTS}")


def run(args: argparse.Namespace) -> int:
    return measure(args).code


def measure(args: argparse.Namespace) -> Result:
    mode = "quick" if args.quick else "full"
    names = args.only or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
        return Result(2)
    names = [name for name in BENCHMARKS if name in names]  # always in the order above
    if args.profile and not py_spy().exists():
        print(f"--profile needs py-spy: {py_spy()} not found (`python3 dev.py bench` installs it)")
        return Result(2)
    try:
        extra = _extra_options(args.set)
    except ValueError as exc:
        print(exc)
        return Result(2)
    load_at_start = os.getloadavg()
    if load_at_start[0] > _BUSY_LOAD:
        print(
            f"warning: load average {load_at_start[0]:.2f} before the start: other work shares"
            " the CPUs, so the figures will be low and noisy"
        )
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    began = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    raw_profiles: dict[str, str] = {}
    code = 0
    for name in names:
        argv = [*OPTIONS[mode][name], "--no-save"]
        if args.profile and name in PROFILED:
            argv += ["--profile", args.profile]
        argv += extra.get(name, [])
        print(f"\n===== {name}: python -m bench {name} {shlex.join(argv)} =====")
        result, seconds = _run_one(BENCHMARKS[name], name, argv)
        code = max(code, result.code)
        runs[name] = {
            "argv": argv,
            "exit_status": result.code,
            "seconds": round(seconds, 1),
            "report": result.report,
        }
        if result.raw_profile:
            raw_profiles[name] = result.raw_profile
    report = {
        "benchmark": "all",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "profile": args.profile,
        "environment": environment(_MEASURED),
        "total_seconds": round(time.perf_counter() - began, 1),
        "rows": rows(runs),
        "sweep": sweep(runs),
        "runs": runs,
    }
    report["environment"]["load_average_at_start"] = [round(x, 2) for x in load_at_start]
    path = RESULTS / f"all-{stamp}.json"
    plot_path = path.with_suffix(".png")
    drawn, why_not = False, None
    if not args.no_save and report["sweep"]:
        RESULTS.mkdir(exist_ok=True)
        why_not = plot(report, plot_path)
        drawn = why_not is None
    markdown = render_markdown(report, plot_path.name if drawn else None, raw_profiles)
    print()
    print(markdown)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        for name, raw in raw_profiles.items():
            raw_path = RESULTS / f"all-{stamp}-{name}.py-spy.txt"
            raw_path.write_text(raw)
            report["runs"][name]["raw_profile"] = raw_path.name
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown + "\n")
        print(f"\nresults: {path} and {path.with_suffix('.md').name}")
        if drawn:
            print(f"plot: {plot_path}")
        elif why_not is not None:
            print(f"no plot: {why_not}")
    print(f"all: {report['total_seconds']:.0f} s")
    return Result(code, report)


def _extra_options(settings: list[str]) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    for setting in settings:
        name, sep, options = setting.partition("=")
        if not sep or name not in BENCHMARKS:
            raise ValueError(
                f"--set {setting!r}: expected NAME=OPTIONS, NAME one of {list(BENCHMARKS)}"
            )
        extra.setdefault(name, []).extend(shlex.split(options))
    return extra


def _run_one(module: ModuleType, name: str, argv: list[str]) -> tuple[Result, float]:
    """One benchmark through its own command line and code; a crash is its result, not
    the end of the others."""
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}")
    module.add_arguments(parser)
    began = time.perf_counter()
    try:
        result: Result = module.measure(parser.parse_args(argv))
    except Exception as exc:  # reported, and the next benchmark runs
        print(f"ERROR {name}: {type(exc).__name__}: {exc}")
        result = Result(1, {"error": f"{type(exc).__name__}: {exc}"})
    return result, time.perf_counter() - began


# -- the table -------------------------------------------------------------------------------


def _row(
    benchmark: str,
    scenario: str,
    target: str,
    peer: str | None,
    measured: dict[str, Any] | None,
    *,
    rate_key: str,
    unit: str,
    rss: float | None,
    ratio: float | None = None,
    goal: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    measured = measured or {}
    return {
        "benchmark": benchmark,
        "scenario": scenario,
        "target": target,
        "peer": peer,
        "rate": measured.get(rate_key),
        "unit": unit,
        "p50_ms": measured.get("p50_ms"),
        "p99_ms": measured.get("p99_ms"),
        "peak_rss_mib": rss,
        "ratio_to_peer": None if ratio is None else round(ratio, 3),
        "goal": goal,
        "verdict": None if met is None else ("met" if met else "MISSED"),
    }


def rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario and target (a target with two peers has a row for each)."""
    table: list[dict[str, Any]] = []
    builders: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
        "auth": _auth_rows,
        "ldap": _ldap_rows,
        "scim": _scim_rows,
        "bulksync": _bulk_rows,
    }
    for name, run in runs.items():
        if run["report"] and "error" not in run["report"]:
            table += builders[name](run["report"])
    return table


def _auth_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    s, ratios, rss = report["scenarios"], report["ratios"], report.get("peak_rss_mib", {})
    plain = "plain ldap3 bind"
    own = rss.get("bench_process")
    common: dict[str, Any] = {"rate_key": "binds_per_second", "unit": "binds/s"}
    table = [
        _row("auth", "bind (ldap3 re-binding one connection)", f"{plain} → slapd (peer)",
             None, s.get("p"), rss=rss.get("slapd"), **common),
        _row("auth", "first bind (JIT sync adds the user)", "gateway runtime, in-process",
             None, s.get("prewarm"), rss=own, **common),
    ]  # fmt: skip
    for key, scenario in (("a", "bind in the JIT window"), ("b", "bind, JIT sync due")):
        ratio = ratios.get(f"{key}/p", {})
        table.append(
            _row("auth", scenario, "gateway runtime, in-process", plain, s.get(key), rss=own,
                 ratio=ratio.get("ratio"), goal=f"≥ {ratio.get('target')}", met=ratio.get("met"),
                 **common)
        )  # fmt: skip
    return table


def _ldap_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    t, ratios, rss = report["targets"], report["ratios"], report.get("peak_rss_mib", {})
    common: dict[str, Any] = {"rate_key": "binds_per_second", "unit": "binds/s"}
    scenario = "bind through the LDAP front (python-ldap clients)"
    back = ratios.get("back-ldap/direct", {})
    table = [
        _row("ldap", scenario, "direct slapd (peer)", None, t.get("direct"),
             rss=rss.get("slapd"), **common),
        _row("ldap", scenario, "back-ldap proxy (peer)", "direct slapd", t.get("back-ldap"),
             rss=rss.get("proxy"), ratio=back.get("ratio"), **common),
    ]  # fmt: skip
    for key, scenario_title in (
        ("warm", "first bind (JIT sync adds the user)"),
        ("due", "every bind JIT-due (a read and a write beside the bind)"),
    ):
        ratio = ratios.get(f"{key}/back-ldap", {})
        table.append(
            _row("ldap", scenario_title, "gateway", "back-ldap proxy", t.get(key),
                 rss=rss.get("gateway"), ratio=ratio.get("ratio"), goal=f"≥ {ratio.get('target')}",
                 met=ratio.get("met"), **common)
        )  # fmt: skip
    for peer_key, peer in (("back-ldap", "back-ldap proxy"), ("direct", "direct slapd")):
        ratio = ratios.get(f"gateway/{peer_key}", {})
        table.append(
            _row("ldap", "bind in the JIT window", "gateway", peer, t.get("gateway"),
                 rss=rss.get("gateway"), ratio=ratio.get("ratio"), goal=f"≥ {ratio.get('target')}",
                 met=ratio.get("met"), **common)
        )  # fmt: skip
    return table


def _scim_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    common: dict[str, Any] = {"rate_key": "requests_per_second", "unit": "req/s"}
    for users, size in report["sizes"].items():
        for scenario in ("filter", "cycle"):
            title = f"{scim.SCENARIO_TITLES[scenario]}, {int(users):,} users"
            for server in ("reference", "gateway-sqlite", "gateway-pg"):
                measured = size["servers"].get(server, {}).get(scenario)
                if measured is None:
                    continue
                rss = size["servers"][server].get("memory", {}).get("peak_rss_mib")
                if server == "reference":
                    table.append(
                        _row("scim", title, "scim2-server reference (peer)", None, measured,
                             rss=rss, **common)
                    )  # fmt: skip
                    continue
                ratio = size["ratios"].get(f"{server}/reference {scenario}", {})
                goal, met = "> 1 (ahead)", ratio.get("ahead")
                judged = size["targets"].get(server, {})
                if scenario == "filter" and judged.get("judged"):
                    goal += f"; ≥ {scim.TARGET_RATE:,.0f}/s, p99 ≤ {scim.TARGET_P99_MS:g} ms"
                    met = bool(met and judged["filter_rate_met"] and judged["filter_p99_met"])
                table.append(
                    _row("scim", title, server.replace("gateway-", "gateway, "), "reference",
                         measured, rss=rss, ratio=ratio.get("ratio"), goal=goal, met=met,
                         **common)
                )  # fmt: skip
    return table


def _bulk_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rates in entries/s; the ratio is the plain read's time over the job's (so ≥ 1/1.5
    is the issue's "first import ≤ 1.5 x the plain read")."""
    table: list[dict[str, Any]] = []
    entries = report["parameters"].get("entries") or report["parameters"]["users"]
    for store, result in report["backends"].items():
        medians, targets = result["medians"], result["targets"]
        title = bulksync.STORE_TITLES[store]

        def measured(kind: str, medians: dict[str, Any] = medians) -> dict[str, Any]:
            seconds = medians[kind]["seconds"]
            return {"entries_per_second": round(entries / seconds, 1) if seconds else None}

        users = f"{report['parameters']['users']:,} users"
        table.append(
            _row("bulksync", f"paged read of {users}", f"plain ldap3 read (peer of {title})", None,
                 measured("plain"), rate_key="entries_per_second", unit="entries/s",
                 rss=medians["plain"]["max_peak_rss_mib"])
        )  # fmt: skip
        rss_ok = targets["rss"]["met"]
        for kind in ("first", "rerun"):
            target = targets[kind]
            ratio = 1 / target["ratio"] if target.get("ratio") else None
            met = None if target["met"] is None else bool(target["met"] and rss_ok)
            table.append(
                _row("bulksync", f"{bulksync.TITLES[kind]}, {users}", f"gateway job, {title}",
                     "plain read", measured(kind), rate_key="entries_per_second",
                     unit="entries/s", rss=medians[kind]["max_peak_rss_mib"], ratio=ratio,
                     goal=f"≥ {1 / target['target']:.2f} (time ≤ {target['target']} x"
                     f" plain); RSS < 300 MB", met=met)
            )  # fmt: skip
    return table


def sweep(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """The LDAP front's sweep: target -> clients -> binds/s and p99."""
    report = runs.get("ldap", {}).get("report") or {}
    points: dict[str, dict[str, dict[str, float]]] = {}
    for clients, targets in (report.get("sweep") or {}).items():
        for key, target in targets.items():
            points.setdefault(key, {})[clients] = {
                "binds_per_second": target["binds_per_second"],
                "p50_ms": target["p50_ms"],
                "p99_ms": target["p99_ms"],
            }
    return points


# -- the plot --------------------------------------------------------------------------------


def plot(report: dict[str, Any], path: Path) -> str | None:
    """Binds/s and p99 against the number of clients, per target; None once drawn, else
    why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}; `python3 dev.py bench` installs it)"
    figure, (rates, tails) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    styles = {"direct": ("tab:blue", "o"), "back-ldap": ("tab:orange", "s"),
              "gateway": ("tab:green", "^"), "due": ("tab:red", "v")}  # fmt: skip
    levels: set[int] = set()
    for key, points in report["sweep"].items():
        clients = sorted(int(c) for c in points)
        levels.update(clients)
        color, marker = styles.get(key, ("tab:gray", "x"))
        label = SWEEP_TARGETS.get(key, key) + (", in JIT window" if key == "gateway" else "")
        rates.plot(clients, [points[str(c)]["binds_per_second"] for c in clients],
                   marker=marker, color=color, label=label)  # fmt: skip
        tails.plot(clients, [points[str(c)]["p99_ms"] for c in clients],
                   marker=marker, color=color, label=label)  # fmt: skip
    ticks = sorted(levels)
    ldap_run = report["runs"]["ldap"]["report"]
    p = ldap_run["parameters"]
    for axes, ylabel in ((rates, "binds/s"), (tails, "p99 latency, ms (log)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(ticks, [str(t) for t in ticks])
        axes.minorticks_off()
        axes.set_xlabel("concurrent clients (one python-ldap connection each)")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
    rates.set_ylim(bottom=0)
    tails.set_yscale("log")
    rates.legend()
    rates.set_title("LDAP binds: throughput")
    tails.set_title("LDAP binds: p99 latency")
    env = report["environment"]
    figure.suptitle(
        f"{p['users']:,} users, {p['sweep_seconds']:g} s per point, {env['cpus']} CPUs shared by"
        f" clients and servers, load {env['load_average_at_start'][0]} at start,"
        f" commit {env['commit']} ({report['mode']} mode)",
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


# -- the Markdown ----------------------------------------------------------------------------


def render_markdown(
    report: dict[str, Any], plot_name: str | None, raw_profiles: dict[str, str]
) -> str:
    env = report["environment"]
    load = " / ".join(str(x) for x in env["load_average_at_start"])
    lines = [
        f"# All benchmarks ({report['mode']} mode), {report['at']}",
        "",
        f"Commit {env['commit']}{' (+ uncommitted changes)' if env['uncommitted_changes'] else ''};"
        f" Python {env['python']}; {env['slapd']}; {env['cpus']} CPUs shared by clients and"
        f" servers; load average {load} (1/5/15 min) at start; total"
        f" {report['total_seconds']:.0f} s"
        + "".join(
            f"; {name} {run['seconds']:.0f} s" + ("" if not run["exit_status"] else " (FAILED)")
            for name, run in report["runs"].items()
        )
        + ".",
        "",
        "Rate: successful operations per second. Ratio: the target's rate over its peer's, in"
        " the same run (bulk sync: the plain read's time over the job's). Peak RSS: `VmHWM` of"
        " the measured process (auth: the benchmark process, where the gateway runtime runs).",
        "",
        "| benchmark | scenario | target | peer | rate | p50 ms | p99 ms | peak RSS MiB"
        " | ratio to peer | goal | verdict |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in report["rows"]:
        rate = "-" if row["rate"] is None else f"{row['rate']:,.0f} {row['unit']}"
        verdict = row["verdict"] or ""
        lines.append(
            f"| {row['benchmark']} | {row['scenario']} | {row['target']} | {row['peer'] or ''}"
            f" | {rate} | {_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])}"
            f" | {_fmt(row['peak_rss_mib'], 0)}"
            f" | {_ratio_cell(row['ratio_to_peer'])}"
            f" | {row['goal'] or ''} | {f'**{verdict}**' if verdict == 'MISSED' else verdict} |"
        )
    if report["sweep"]:
        levels = sorted({int(c) for points in report["sweep"].values() for c in points})
        lines += [
            "",
            "LDAP front, binds/s (p99 ms) by number of clients:",
            "",
            "| target | " + " | ".join(f"{c} client{'s' if c != 1 else ''}" for c in levels) + " |",
            "|---|" + "---:|" * len(levels),
        ]
        for key, points in report["sweep"].items():
            cells = [
                f"{p['binds_per_second']:,.0f} ({_fmt(p['p99_ms'], 1)})"
                if (p := points.get(str(c)))
                else "-"
                for c in levels
            ]
            lines.append(f"| {SWEEP_TARGETS.get(key, key)} | " + " | ".join(cells) + " |")
        if plot_name is not None:
            lines += ["", f"![throughput against concurrency]({plot_name})"]
    for name, run in report["runs"].items():
        profile = (run["report"] or {}).get("profile")
        if not profile or "error" in profile:
            continue
        samples = profile["samples"] or 1
        where = "bind in the JIT window" if name == "ldap" else "SCIM filter GET, SQLite"
        lines += [
            "",
            f"Profile, {name} ({where}; py-spy --{profile['mode']}, {profile['samples']:,}"
            f" samples{'; raw samples beside this file' if name in raw_profiles else ''}):",
            "",
            "| running (self) | share | | idgate's functions on the stack | share |",
            "|---|---:|---|---|---:|",
        ]
        # The entry points (`serve`, the CLI) are on every stack and say nothing.
        total = [row for row in profile["total_own_code"] if not row[0].startswith("serve (")]
        own, total = profile["self"][:10], total[:10]
        for index in range(max(len(own), len(total))):
            left = own[index] if index < len(own) else ("", 0)
            right = total[index] if index < len(total) else ("", 0)
            lines.append(
                f"| `{left[0]}` | {left[1] / samples:.1%} | | `{right[0]}`"
                f" | {right[1] / samples:.1%} |"
            )
        if profile.get("layers"):
            lines += ["", "By layer: " + "; ".join(f"{n} {s:.1%}" for n, s in profile["layers"])]
        if profile.get("packages"):
            lines += [
                "",
                "By package (self): "
                + ", ".join(f"{p} {c / samples:.1%}" for p, c in profile["packages"][:10]),
            ]
    problems = [
        f"- {name}: exit status {run['exit_status']}"
        + (f" ({run['report']['error']})" if "error" in (run["report"] or {}) else "")
        for name, run in report["runs"].items()
        if run["exit_status"]
    ]
    notes = _notes(report)
    if problems or notes:
        lines += ["", "Notes:", "", *problems, *notes]
    return "\n".join(lines)


def _one_line(note: str) -> str:
    """A note of several lines (a log tail) as its first and last line."""
    lines = [line.strip() for line in note.strip().splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


def _notes(report: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    for name, run in report["runs"].items():
        sub = run["report"] or {}
        for key, note in (sub.get("notes") or {}).items():
            if "not measured" in note or "NOT" in note:
                notes.append(f"- {name}, {key}: {_one_line(note)}")
        for users, size in (sub.get("sizes") or {}).items():
            for key, note in size.get("notes", {}).items():
                if "not measured" in note or "NOT" in note:
                    notes.append(f"- {name}, {int(users):,} users, {key}: {_one_line(note)}")
        for store, backend in (sub.get("backends") or {}).items():
            notes += [f"- {name}, {store}: {_one_line(p)}" for p in backend.get("problems", [])]
    return notes


def _ratio_cell(ratio: float | None) -> str:
    return "" if ratio is None else f"**{ratio:.2f}**"


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"
