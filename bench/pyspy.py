"""Where the gateway's time goes: py-spy sampling the gateway process while it is measured.

py-spy reads the process's memory from outside (no change to the gateway, no restart) and
writes every sampled stack in its raw ("collapsed") format; `rank_samples` ranks threads,
the functions that were running (self, any code) and idgate's own functions on the stack
(total), as shares of the samples. Two modes:

  gil     only the thread holding the GIL is sampled: where the interpreter's one core
          goes (the gateway is one CPython process, so this is its CPU ceiling);
  active  every thread py-spy does not see as idle: also shows where calls wait (a
          connection pool, a lock); py-spy's idle test misses some waits on locks.

py-spy is not a dependency of the project: `.venv/bin/pip install py-spy` for benchmarking.
"""

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.ldapproxy.gateway_process import GatewayProcess

MODES = ("gil", "active")
# Samples per second.
_RATE = 200
# Functions listed by each ranking.
_TOP = 20
# The number that tells the threads of a pool apart: `ThreadPoolExecutor-0_3`, `Thread-7`.
_THREAD_NUMBER = re.compile(r"\d+$")
# A frame of idgate's own code: `authenticate (gateway/auth/binds.py:117)`.
_FILE = re.compile(r"\((?P<top>[^/():]+)[^()]*:\d+\)$")
_OWN_CODE = re.compile(r"\((?:gateway|ldapproxy|store|scim)/")


class Profiler:
    """py-spy sampling `gateway` from `start()` until `stop()`, `--nonblocking` (the
    gateway is not paused for each sample). After `stop()`, `raw` is py-spy's output, the
    input of flamegraph.pl."""

    def __init__(self, gateway: GatewayProcess, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self._gateway = gateway
        self._mode = mode
        self._output = gateway.workdir / "py-spy.txt"
        self._process: subprocess.Popen[bytes] | None = None
        self.raw = ""

    def start(self) -> None:
        command = [
            str(py_spy()), "record",
            "--pid", str(self._gateway.pid),
            "--rate", str(_RATE),
            "--format", "raw",
            "--function",  # aggregate by function (its first line), not by line
            "--threads",  # each stack starts with `thread (<id>): <name>`
            "--nonblocking",
            "--output", str(self._output),
        ]  # fmt: skip
        if self._mode == "gil":
            command.append("--gil")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> dict[str, Any]:
        """Stop sampling (py-spy writes its file on SIGINT) and rank the samples."""
        process = self._process
        if process is None:
            return {"error": "py-spy never started"}
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if not self._output.exists():
            return {"error": f"py-spy wrote nothing: {stderr.decode(errors='replace').strip()}"}
        self.raw = self._output.read_text()
        return {"mode": self._mode, **rank_samples(self.raw)}


def rank_samples(collapsed: str, top: int = _TOP) -> dict[str, Any]:
    """Rank py-spy's raw output (`thread (<id>): <name>;frame;... count` per line, the
    outermost frame first, `--threads`): threads by their samples (a pool's threads
    together: `ThreadPoolExecutor-0_*`); functions by the samples in which they are running
    (self); idgate's own functions by the samples in which they are on the stack (total)."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = _THREAD_NUMBER.sub("*", frames.pop(0).partition(": ")[2] or "?")
        if not frames:
            continue
        samples += count
        threads[thread] += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            if _OWN_CODE.search(frame):
                inclusive[frame] += count
    return {
        "samples": samples,
        "threads": threads.most_common(top),
        "packages": packages.most_common(top),
        "self": own.most_common(top),
        "total_own_code": inclusive.most_common(top),
    }


def _package(frame: str) -> str:
    """The top-level package (or stdlib module) of a frame: `f (ldap3/core/x.py:1)` -> ldap3."""
    match = _FILE.search(frame)
    return match["top"].removesuffix(".py") if match else "?"


def py_spy() -> Path:
    return Path(sys.executable).parent / "py-spy"


def print_profile(profile: dict[str, Any]) -> None:
    if "error" in profile:
        print(f"\nprofile: {profile['error']}")
        return
    samples = profile["samples"] or 1
    print(
        f"\nwhere the gateway's time goes (py-spy --{profile['mode']}, {profile['samples']:,}"
        " samples; shares of them)"
    )
    rankings = (
        ("threads", "by thread"),
        ("packages", "running, by package (self)"),
        ("self", "running (self)"),
        ("total_own_code", "idgate's functions on the stack (total)"),
    )
    for ranking, title in rankings:
        print(f"  {title}:")
        for frame, count in profile[ranking]:
            print(f"    {count / samples:6.1%}  {frame}")
