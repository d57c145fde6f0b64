"""What a benchmark's run gives back: its exit status and its report, as data.

Every benchmark's `run(args) -> int` is `measure(args).code`; `python -m bench all`
(bench/all.py) calls `measure` to gather the reports of several into one table.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass
class Result:
    #: The command's exit status: 0, 1 when a measurement failed, 2 when it could not start.
    code: int
    #: What the benchmark writes to its JSON file (empty when it could not start).
    report: dict[str, Any] = field(default_factory=dict)
    #: py-spy's raw samples of the profiled server, when there was a profile.
    raw_profile: str = ""


def memory_mib(pid: int | None, field_name: str) -> float | None:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in MiB (None when it is gone)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    except OSError:
        return None
    return None
