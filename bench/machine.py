"""What every benchmark records about the machine and the code it measured."""

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers.slapd import find_installation

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc); None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), utime and stime, counted after the ")" of the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment(measured: list[str], **extra: Any) -> dict[str, Any]:
    """Versions, CPUs, the commit, and whether the `measured` folders differ from it."""
    return {
        "python": platform.python_version(),
        **extra,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "slapd": first_line([str(find_installation().slapd), "-VV"]),
        "commit": first_line(["git", "rev-parse", "--short", "HEAD"]),
        # bench/ itself does not count.
        "uncommitted_changes": bool(
            first_line(["git", "status", "--porcelain", "--untracked-files=no", "--", *measured])
        ),
        "executable": sys.executable,
    }


def first_line(command: list[str]) -> str | None:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command, capture_output=True, text=True, check=False, timeout=10, cwd=ROOT
        )
    except OSError:
        return None
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0].strip() if lines else None
