"""One measurement of `python -m bench bulksync`, in a process of its own.

    python -m bench.bulkrun SPEC.json RESULT.json

Each measurement runs in a fresh interpreter so that its peak RSS (`VmHWM`) is its own and
the three kinds are comparable. SPEC says which:

  plain  a paged read of the source's entries with ldap3 alone: the same server, service
         account, filter, attributes, page size and connection options as the gateway's
         connector, and nothing done with the entries but counting them. Only ldap3 is
         imported, so the RSS is that of a bare client.
  bulk   `gateway.runtime.main.build(config)`, then one bulk job of the source through
         `runtime.jobs.start(...)` and `runtime.jobs.wait(...)`: what `idgate` does when an
         administrator starts a bulk sync. With "profile" set, every thread runs under its own
         cProfile profiler, and the job's writer and reader threads' statistics are dumped
         to `<profile>-writer.prof` and `<profile>-reader.prof`.

RESULT gets the wall seconds of the measured part, the process's CPU seconds over it, its RSS
before and its peak, and the job's state and counts.
"""

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

_MIB = 1024 * 1024


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    result: dict[str, Any] = {"mode": spec["mode"], "rss_mib_at_start": _status("VmRSS")}
    if spec["mode"] == "plain":
        result.update(_plain(spec))
    else:
        result.update(_bulk(spec))
    result["peak_rss_mib"] = _status("VmHWM")
    result["ru_maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(argv[2]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Read every entry page by page, as `Directory.read_scope` asks for them."""
    import ldap3

    rss_before = _status("VmRSS")
    cpu, began = _cpu(), time.perf_counter()
    server = ldap3.Server(
        spec["host"],
        port=spec["port"],
        get_info=ldap3.NONE,
        connect_timeout=spec["connect_timeout"],
    )
    # The options of gateway/directory/connect.py `Connector._open_one`, service bind included.
    connection = ldap3.Connection(
        server,
        user=spec["bind_dn"],
        password=spec["bind_password"],
        client_strategy=ldap3.SYNC,
        auto_referrals=False,
        auto_range=True,
        read_only=True,
        raise_exceptions=False,
        check_names=False,
        return_empty_attributes=False,
        receive_timeout=spec["receive_timeout"],
    )
    connection.open(read_server_info=False)
    connection.socket.settimeout(spec["operation_timeout"])
    if not connection.bind(read_server_info=False):
        raise RuntimeError(f"service bind refused: {connection.result}")
    entries = pages = 0
    for base in spec["roots"]:
        cookie: bytes | None = None
        while True:
            connection.search(
                search_base=base,
                search_filter=spec["filter"],
                search_scope=ldap3.SUBTREE,
                dereference_aliases=ldap3.DEREF_NEVER,
                attributes=spec["attributes"],
                time_limit=spec["time_limit"],
                paged_size=spec["page_size"],
                paged_cookie=cookie,
                paged_criticality=True,
            )
            if connection.result["result"] != 0:
                raise RuntimeError(f"paged search failed: {connection.result}")
            pages += 1
            entries += sum(1 for r in connection.response or () if r["type"] == "searchResEntry")
            control = (connection.result.get("controls") or {}).get(spec["paged_oid"]) or {}
            cookie = (control.get("value") or {}).get("cookie") or None
            if not cookie:
                break
    connection.unbind()
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": _cpu() - cpu,
        "rss_mib_before": rss_before,
        "entries": entries,
        "pages": pages,
    }


def _bulk(spec: dict[str, Any]) -> dict[str, Any]:
    profiler = _ThreadProfiles() if spec.get("profile") else None
    threads = _ThreadCpu() if profiler is None else None
    began = time.perf_counter()
    from gateway.config import parse_config
    from gateway.engine.types import Role
    from gateway.jobs.service import JobKind
    from gateway.runtime.main import build
    from gateway.users.service import Actor

    runtime = build(parse_config(spec["config"], {}))
    built = time.perf_counter() - began
    rss_before = _status("VmRSS")
    try:
        cpu, began = _cpu(), time.perf_counter()
        job = runtime.jobs.start(Actor("bench", Role.SUPER_ADMIN), JobKind.BULK, spec["source"])
        view = runtime.jobs.wait(job.id, timeout=spec["timeout"])
        seconds, cpu_seconds = time.perf_counter() - began, _cpu() - cpu
    finally:
        runtime.close()
        runtime.upstream_pool.shutdown(wait=True)
    result: dict[str, Any] = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "import_and_build_seconds": built,
        "rss_mib_before": rss_before,
        "job": view.id,
        "state": view.state.value,
        "error": view.error,
        "job_seconds": (
            (view.ended_at - view.started_at).total_seconds() if view.ended_at else None
        ),
        "counts": view.counts.as_dict(),
    }
    if profiler is not None:
        result["threads"] = profiler.dump(spec["profile"])
    if threads is not None:
        result["thread_cpu_seconds"] = threads.by_role()
    return result


def _role(name: str) -> str:
    """What a thread does in a bulk job, by the name gateway/jobs/bulk.py and jobs.py give it."""
    if not name.startswith("idgate-job-"):
        return "other"
    if name.endswith("-read"):
        return "reader"
    return "lease" if name.endswith("-lease") else "writer"


class _ThreadCpu:
    """Each thread's CPU seconds, read at its start and end (`threading.Thread.run` wrapped
    before the runtime is built): how the job's work splits between its reader and writer."""

    def __init__(self) -> None:
        import threading

        self._records: list[dict[str, Any]] = []
        original = threading.Thread.run
        records = self._records

        def run(thread: Any) -> None:
            record: dict[str, Any] = {"thread": thread, "cpu": None}
            records.append(record)
            began = time.thread_time()
            try:
                original(thread)
            finally:
                record["cpu"] = time.thread_time() - began

        threading.Thread.run = run  # type: ignore[method-assign,assignment]

    def by_role(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for record in self._records:
            record["thread"].join(5)
            if record["cpu"] is not None:
                role = _role(record["thread"].name)
                totals[role] = round(totals.get(role, 0.0) + record["cpu"], 3)
        return totals


class _ThreadProfiles:
    """A cProfile profiler per thread (cProfile sees only the thread that enabled it).

    `threading.Thread.run` is wrapped before the runtime is built, so the job's writer
    (`idgate-job-<id>`), its reader (`idgate-job-<id>-read`), its lease heartbeat and the
    gateway's idle threads each run under a profiler of their own. The timer is cProfile's
    default, the wall clock: CPython's per-thread CPU clock would cost a system call per
    event and slow the run ten times. So a thread's figures include its waits (for a page,
    the queue, the database's answer) and the time it waited for the GIL, charged to the
    function it was in; each thread's own CPU seconds are taken beside them.
    """

    def __init__(self) -> None:
        import cProfile
        import threading

        self._threads: list[dict[str, Any]] = []
        original = threading.Thread.run
        threads = self._threads

        def run(thread: Any) -> None:
            record = {"thread": thread.name, "object": thread, "profile": cProfile.Profile()}
            threads.append(record)
            cpu = time.thread_time()
            record["profile"].enable()
            try:
                original(thread)
            finally:
                record["profile"].disable()
                record["cpu_seconds"] = time.thread_time() - cpu

        threading.Thread.run = run  # type: ignore[method-assign,assignment]

    def dump(self, prefix: str) -> list[dict[str, Any]]:
        """Write the job's writer and reader statistics to `<prefix>-writer.prof` and
        `<prefix>-reader.prof`; returns every thread's role, wall and CPU seconds."""
        import pstats

        summary = []
        for record in self._threads:
            record["object"].join(5)
            name = record["thread"]
            role = _role(name)
            row = {"thread": name, "role": role, "cpu_seconds": record.get("cpu_seconds")}
            if record["object"].is_alive():
                summary.append({**row, "note": "still running"})
                continue
            stats = pstats.Stats(record["profile"])
            row["profiled_seconds"] = float(sum(r[2] for r in stats.stats.values()))  # type: ignore[attr-defined]
            if role in ("writer", "reader"):
                row["file"] = f"{prefix}-{role}.prof"
                stats.dump_stats(row["file"])
            summary.append(row)
        return summary


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status(field: str) -> float | None:
    """A line of /proc/self/status (VmRSS, VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) * 1024 / _MIB, 1)
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
