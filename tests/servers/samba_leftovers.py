"""What a SIGKILLed run leaves behind, and removing it.

Every namespace and temp directory of the Samba fixture is named `idgate-samba-<pid>-...`
after the process that made it; one whose pid is dead is a leftover.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

from tests.servers.samba_install import Installation, run

__all__ = ["NAME_PREFIX", "Stale", "find_stale", "remove_stale_once"]

NAME_PREFIX = "idgate-samba-"


class Stale(NamedTuple):
    namespaces: list[str]
    directories: list[Path]


_stale_lock = threading.Lock()
_stale_checked = False


def remove_stale_once(installation: Installation) -> None:
    """Remove what a SIGKILLed earlier run left: its namespaces (and so veth pairs) and temp
    directories, recognised by the dead pid in their names. Once per process."""
    global _stale_checked
    with _stale_lock:
        if _stale_checked:
            return
        _stale_checked = True
        stale = find_stale(installation)
        for name in stale.namespaces:
            run([str(installation.ip), "netns", "delete", name], check=False)
        for directory in stale.directories:
            shutil.rmtree(directory, ignore_errors=True)


def find_stale(installation: Installation) -> Stale:
    """The namespaces and temp directories named after a process that no longer runs."""
    owner = re.compile(rf"^{re.escape(NAME_PREFIX)}(\d+)-")
    listing = run([str(installation.ip), "-j", "netns", "list"], check=False).stdout
    names = [entry["name"] for entry in json.loads(listing or "[]")]
    directories = list(Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}*"))

    def dead(name: str) -> bool:
        match = owner.match(name)
        return match is not None and not _alive(int(match[1]))

    return Stale(
        [name for name in names if dead(name)],
        [path for path in directories if path.is_dir() and dead(path.name)],
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
