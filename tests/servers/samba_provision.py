"""Provisioning the test domain, once per process, into a template every DC copies.

`samba-tool domain provision` (realm IDGATE.TEST, NetBIOS domain IDGATE, host DC1, RFC 2307,
no DNS) takes seconds, so it runs once into a template directory; each `SambaAD` copies the
template and writes its own smb.conf (`smb_conf`), every path inside its temp dir.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers.samba_domain import ADMIN_PASSWORD, HOST_NAME, NETBIOS_DOMAIN, REALM
from tests.servers.samba_install import Installation, SambaError, find_installation, run
from tests.servers.samba_leftovers import NAME_PREFIX

__all__ = ["PROVISION_TIMEOUT", "Template", "provision", "shared_template", "smb_conf"]

PROVISION_TIMEOUT = 180.0


@dataclass(frozen=True)
class Template:
    """A freshly provisioned, never started domain, copied by every `SambaAD`."""

    path: Path
    provision_seconds: float


_template_lock = threading.Lock()
_template: Template | None = None


def shared_template(installation: Installation | None = None) -> Template:
    """The process-wide template: provisioned on first use (seconds), removed at exit."""
    global _template
    with _template_lock:
        if _template is None:
            installation = installation or find_installation()
            directory = Path(tempfile.mkdtemp(prefix=f"{NAME_PREFIX}{os.getpid()}-template-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            try:
                seconds = provision(installation, directory)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            _template = Template(directory, seconds)
        return _template


def provision(installation: Installation, directory: Path) -> float:
    """`samba-tool domain provision` of IDGATE.TEST into `directory`; returns its seconds.

    Raises: SambaError with the tail of samba-tool's output.
    """
    config = directory / "etc" / "smb.conf"
    config.parent.mkdir(parents=True)
    config.touch()  # samba-tool wants the file to exist; it fills an empty one
    command = [
        str(installation.samba_tool), "domain", "provision",
        f"--configfile={config}",
        f"--realm={REALM}",
        f"--domain={NETBIOS_DOMAIN}",
        f"--host-name={HOST_NAME.lower()}",
        "--server-role=dc",
        "--use-rfc2307",
        "--dns-backend=NONE",
        f"--adminpass={ADMIN_PASSWORD}",
        *(f"--option={name}={value}" for name, value in _directories(directory).items()),
    ]  # fmt: skip
    began = time.perf_counter()
    completed = run(command, check=False, timeout=PROVISION_TIMEOUT)
    seconds = time.perf_counter() - began
    (directory / "provision.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-25:])
        raise SambaError(f"samba-tool domain provision failed ({completed.returncode}):\n{tail}")
    return seconds


def _directories(root: Path) -> dict[str, str]:
    """Every directory Samba would otherwise take from /var or /run."""
    return {
        "private dir": f"{root}/private",
        "lock directory": f"{root}/lock",
        "state directory": f"{root}/state",
        "cache directory": f"{root}/cache",
        "pid directory": f"{root}/run",
        "binddns dir": f"{root}/bind-dns",
        "ncalrpc dir": f"{root}/run/ncalrpc",
        "winbindd socket directory": f"{root}/run/winbindd",
        "log file": f"{root}/log/samba.log",
    }


def smb_conf(root: Path, address: str, prefixlen: int, log_level: str) -> str:
    """The smb.conf of a DC in `root` that listens on `address` only."""
    lines = {
        "netbios name": HOST_NAME,
        "realm": REALM,
        "workgroup": NETBIOS_DOMAIN,
        "server role": "active directory domain controller",
        # LDAP (389, 636, 3268, 3269) and nothing else: no SMB, RPC, KDC, DNS, NTP.
        "server services": "ldap",
        "idmap_ldb:use rfc2307": "yes",
        **_directories(root),
        "interfaces": f"{address}/{prefixlen}",
        "bind interfaces only": "yes",
        # Simple binds over plain LDAP, as many RADIUS/SSO setups still do; AD's default
        # answers them with strongerAuthRequired.
        "ldap server require strong auth": "no",
        "log level": log_level,
    }
    return "[global]\n" + "".join(f"\t{name} = {value}\n" for name, value in lines.items())
