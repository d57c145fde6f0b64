"""Finding the Samba installation, running its tools, and the errors of the Samba fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Installation",
    "SambaError",
    "SambaUnavailable",
    "find_installation",
    "run",
    "samba_environment",
]


class SambaError(RuntimeError):
    """Samba could not be provisioned or started, or a helper's LDAP operation failed."""


class SambaUnavailable(SambaError):
    """This machine cannot run the DC: software missing, or no network namespaces (not root)."""


@dataclass(frozen=True)
class Installation:
    samba: Path
    samba_tool: Path
    ip: Path


def find_installation() -> Installation:
    """Locate `samba`, `samba-tool` (with its provisioning data) and iproute2's `ip`.

    Raises: SambaUnavailable naming what is missing.
    """
    found = {name: _find_binary(name) for name in ("samba", "samba-tool", "ip")}
    missing = [name for name, path in found.items() if path is None]
    if not Path("/usr/share/samba/setup/provision.ldif").exists():
        missing.append("provisioning data (samba-ad-provision)")
    samba, samba_tool, ip = found["samba"], found["samba-tool"], found["ip"]
    if missing or samba is None or samba_tool is None or ip is None:
        raise SambaUnavailable(
            f"Samba AD DC not installed, missing: {', '.join(missing)}"
            " (apt-get install samba-ad-dc samba-ad-provision iproute2)"
        )
    return Installation(samba, samba_tool, ip)


def _find_binary(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    # /usr/sbin is not on PATH for every user or CI runner.
    return next((Path(d, name) for d in ("/usr/sbin", "/sbin") if Path(d, name).exists()), None)


def samba_environment() -> dict[str, str]:
    """Our environment without what must not reach Samba's programs."""
    # samba-tool is Debian's /usr/bin/python3 program: a virtualenv's or pyenv's Python
    # settings must not leak into it.
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


def run(
    command: list[str], *, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (Samba's environment, no stdin), capturing its output.

    Raises: SambaError with its stderr when it fails and `check` is set.
    """
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=samba_environment(),
        stdin=subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        raise SambaError(f"{' '.join(command)} failed:\n{completed.stderr.strip()}")
    return completed
