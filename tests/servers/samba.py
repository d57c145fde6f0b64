"""A throwaway Samba Active Directory domain controller, the AD upstream of the tests.

Samba's LDAP ports are fixed (389/636, and 3268/3269 for the global catalog), so each
`SambaAD` runs in a network namespace of its own (`idgate-samba-<pid>-<hex>`), joined to
the test process by a veth pair on a random /30 of 10.231.0.0/16: the host side is .1, the
DC .2. These addresses exist only on this machine; nothing else is ever contacted.

The domain (realm IDGATE.TEST, NetBIOS domain IDGATE, host DC1) is provisioned offline with
`samba-tool domain provision` once per process into a template directory (`Template`);
each server copies it, writes its own smb.conf (every path inside its temp dir), runs
`samba -i -M single` inside the namespace and, on its first start, seeds OUs, users and
groups over LDAPS as Administrator. Nothing here imports pytest.

    with SambaAD() as dc:                  # provision once, copy, start, seed; on exit remove
        dc.url                             # ldap://10.231.X.Y (plain simple binds allowed)
        dc.ldaps_url, dc.ca_file, dc.tls_server_name
        dc.users["alice"].upn              # alice@idgate.test
        dc.count_binds(account="alice")
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import escape_rdn

# Shared with the slapd fixture: the socket-leak workaround, the death signal for children
# and the {attribute: value} -> ldap3 modify translation.
from tests.servers.slapd import _change, _die_with_parent, close_quietly

__all__ = [
    "ACCOUNT_NEVER_EXPIRES",
    "UF_ACCOUNTDISABLE",
    "UF_NORMAL_ACCOUNT",
    "UF_PASSWORD_EXPIRED",
    "AdUser",
    "NetworkNamespace",
    "SambaAD",
    "SambaError",
    "SambaUnavailable",
    "Template",
    "filetime",
    "find_installation",
    "from_filetime",
]

REALM = "IDGATE.TEST"
DNS_DOMAIN = "idgate.test"
NETBIOS_DOMAIN = "IDGATE"
HOST_NAME = "DC1"
BASE_DN = "DC=idgate,DC=test"
ADMIN_PASSWORD = "Adm1n!Passw0rd"
SERVICE_SAM = "idgate-svc"
OUS = ("People", "Contractors", "Services", "Groups")

# userAccountControl bits ([MS-ADTS] 2.2.16).
UF_ACCOUNTDISABLE = 0x2
UF_NORMAL_ACCOUNT = 0x200
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_PASSWORD_EXPIRED = 0x800000  # only ever in msDS-User-Account-Control-Computed
# accountExpires: 0 and this value both mean "never".
ACCOUNT_NEVER_EXPIRES = 0x7FFFFFFFFFFFFFFF

# Where every namespace's /30 comes from: 16384 of them, picked at random per server.
NETWORK_POOL = ipaddress.IPv4Network("10.231.0.0/16")
NAME_PREFIX = "idgate-samba-"

PROVISION_TIMEOUT = 180.0
START_TIMEOUT = 30.0  # the first start also makes a 4096-bit RSA key for LDAPS
STOP_TIMEOUT = 10.0

# Level 5 is where Samba logs every LDAP search ("LDAP Query: ... filter: [...]"), which
# count_searches reads; binds are logged by auth_audit ("Auth: [LDAP,simple bind] ...").
# The JSON twins of the audit lines only double the log.
DEFAULT_LOG_LEVEL = (
    "5 auth_json_audit:0 dsdb_json_audit:0 dsdb_password_json_audit:0"
    " dsdb_transaction_json_audit:0 dsdb_group_json_audit:0"
)


class SambaError(RuntimeError):
    """Samba could not be provisioned or started, or a helper's LDAP operation failed."""


class SambaUnavailable(SambaError):
    """This machine cannot run the DC: software missing, or no network namespaces (not root)."""


# -- time in Active Directory ----------------------------------------------------------------

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime(moment: datetime) -> int:
    """Windows FILETIME (100 ns intervals since 1601-01-01 UTC) of an aware datetime."""
    delta = moment - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def from_filetime(value: int) -> datetime:
    """The datetime of a FILETIME (not for 0 / ACCOUNT_NEVER_EXPIRES, which mean never)."""
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


# -- the seed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdUser:
    """A user in the DC. `attributes` holds what was written besides objectClass and
    unicodePwd, each as a tuple of strings; `groups` the DNs of its groups."""

    sam: str
    dn: str
    upn: str
    password: str
    purpose: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def down_level(self) -> str:
        """`IDGATE\\<sam>`, the NT4-style logon name AD accepts as a simple-bind name."""
        return f"{NETBIOS_DOMAIN}\\{self.sam}"


@dataclass(frozen=True)
class _UserSpec:
    sam: str
    full_name: str  # the CN: AD DNs carry the display name, not the logon name
    ou: str
    purpose: str
    upn_local: str = ""  # default: sam
    uac: int = UF_NORMAL_ACCOUNT
    extra: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()


PAST_EXPIRY = filetime(datetime(2020, 1, 1, tzinfo=UTC))

_USERS = (
    _UserSpec(
        "alice", "Alice Liddell", "People",
        "active; mail, mobile, telephoneNumber, title, department; in staff and vpn-users",
        extra={
            "mail": f"alice@{DNS_DOMAIN}",
            "mobile": "+1 202 555 0101",
            "telephoneNumber": "+1 202 555 0111",
            "title": "Engineer",
            "department": "Research",
        },
        groups=("staff", "vpn-users"),
    ),
    _UserSpec(
        "bob", "Bob Marley", "People",
        "disabled: userAccountControl 0x202; bind fails with data 533",
        uac=UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE,
        extra={"mail": f"bob@{DNS_DOMAIN}", "mobile": "+1 202 555 0102"},
        groups=("staff",),
    ),
    _UserSpec(
        "carol", "Carol Danvers", "People",
        "expired: accountExpires 2020-01-01 (FILETIME); bind fails with data 701",
        extra={"mail": f"carol@{DNS_DOMAIN}", "accountExpires": str(PAST_EXPIRY)},
        groups=("staff",),
    ),
    _UserSpec(
        "dave", "Dave Bowman", "People",
        "must change password: pwdLastSet 0; bind fails with data 773",
        extra={"mail": f"dave@{DNS_DOMAIN}", "pwdLastSet": "0"},
        groups=("staff",),
    ),
    _UserSpec(
        "erin", "Erin Brockovich", "Contractors",
        "active but out of scope (OU=Contractors)",
        extra={"mail": f"erin@{DNS_DOMAIN}", "mobile": "+1 202 555 0105"},
    ),
    _UserSpec(
        "frank", "Frank Jones", "People",
        "active; UPN frank.jones@idgate.test differs from sAMAccountName frank",
        upn_local="frank.jones",
        extra={
            "mail": f"frank.jones@{DNS_DOMAIN}",
            "mobile": "+1 202 555 0106",
            "telephoneNumber": "+1 202 555 0116",
        },
        groups=("staff",),
    ),
)  # fmt: skip


def seed_password(sam: str) -> str:
    """The seed's password rule: AD complexity (upper, lower, digit, symbol), per account."""
    return f"Passw0rd!{sam}"


def user_record(
    sam: str,
    ou: str = "People",
    *,
    password: str | None = None,
    full_name: str | None = None,
    upn: str | None = None,
    uac: int = UF_NORMAL_ACCOUNT,
    purpose: str = "",
    groups: Sequence[str] = (),
    **attrs: Any,
) -> AdUser:
    """The record of a user to add: `CN=<full_name or sam>,OU=<ou>,<base>`, password
    `seed_password(sam)` and UPN `<sam>@idgate.test` unless given; `attrs` are further
    attributes (str, int, or a list of them)."""
    cn = full_name or sam
    given, _, surname = cn.partition(" ")
    upn = upn or f"{sam}@{DNS_DOMAIN}"
    attributes: dict[str, Any] = {
        "sAMAccountName": sam,
        "userPrincipalName": upn,
        "displayName": cn,
        "userAccountControl": uac,
        **({"givenName": given, "sn": surname} if surname else {}),
        **attrs,
    }
    return AdUser(
        sam=sam,
        dn=f"CN={escape_rdn(cn)},OU={ou},{BASE_DN}",
        upn=upn,
        password=seed_password(sam) if password is None else password,
        purpose=purpose,
        attributes={name: _as_strings(value) for name, value in attributes.items()},
        groups=tuple(groups),
    )


def _group_dn(name: str) -> str:
    return f"CN={escape_rdn(name)},OU=Groups,{BASE_DN}"


def seed_user_records() -> dict[str, AdUser]:
    """The seed users by sAMAccountName."""
    return {
        spec.sam: user_record(
            spec.sam, spec.ou,
            full_name=spec.full_name,
            upn=f"{spec.upn_local or spec.sam}@{DNS_DOMAIN}",
            uac=spec.uac,
            purpose=spec.purpose,
            groups=[_group_dn(name) for name in spec.groups],
            **spec.extra,
        )
        for spec in _USERS
    }  # fmt: skip


def service_account() -> AdUser:
    """The gateway's read-only service account: a plain domain user (AD lets every
    authenticated user read users), under OU=Services; its password never expires."""
    return user_record(
        SERVICE_SAM, "Services",
        uac=UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD,
        purpose="read-only service account of the gateway",
        description="read-only service account of the gateway",
    )  # fmt: skip


def seed_group_members() -> dict[str, tuple[str, ...]]:
    """Group DN -> member DNs (global security groups under OU=Groups)."""
    users = seed_user_records().values()
    dns = sorted({dn for user in users for dn in user.groups})
    return {dn: tuple(user.dn for user in users if dn in user.groups) for dn in dns}


# -- the installation ------------------------------------------------------------------------


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


# -- the network namespace -------------------------------------------------------------------


class NetworkNamespace:
    """A network namespace joined to ours by a veth pair on a random /30 of NETWORK_POOL:
    `host_address` (.1) is on our side, `address` (.2) inside, where the DC listens."""

    def __init__(self, ip: Path) -> None:
        token = secrets.token_hex(4)
        # The pid lets a later run recognise namespaces of a run that was SIGKILLed.
        self.name = f"{NAME_PREFIX}{os.getpid()}-{token}"
        self.host_interface = f"idgs{token}"  # Linux interface names: at most 15 characters
        self._ip = str(ip)
        self._network: ipaddress.IPv4Network | None = None
        self._created = False

    @property
    def network(self) -> ipaddress.IPv4Network:
        if self._network is None:
            raise SambaError(f"namespace {self.name} not created")
        return self._network

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.network.network_address + 2)

    def exec_prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return [self._ip, "netns", "exec", self.name]

    def create(self) -> None:
        """Create the namespace and the veth pair, address both ends, bring links up.

        Raises: SambaUnavailable when namespaces cannot be made here (not root, no
        CAP_SYS_ADMIN/CAP_NET_ADMIN); SambaError when a later step fails.
        """
        completed = self._run("netns", "add", self.name, check=False)
        if completed.returncode != 0:
            raise SambaUnavailable(
                "cannot create a network namespace for Samba AD (needs root:"
                f" CAP_SYS_ADMIN and CAP_NET_ADMIN): {completed.stderr.strip()}"
            )
        self._created = True
        try:
            addresses = self._run("-j", "-4", "addr", "show").stdout
            routes = self._run("-j", "-4", "route", "show", "table", "all").stdout
            self._network = _free_network(addresses, routes)
            prefix = self.network.prefixlen
            self._run("link", "add", self.host_interface, "type", "veth",
                      "peer", "name", "eth0", "netns", self.name)  # fmt: skip
            self._run("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_interface)
            self._run("link", "set", self.host_interface, "up")
            self._run("-n", self.name, "addr", "add", f"{self.address}/{prefix}", "dev", "eth0")
            self._run("-n", self.name, "link", "set", "eth0", "up")
            self._run("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        """Delete the namespace (which takes its veth end, and so the pair, with it) and,
        should it remain, our end. Idempotent; never raises."""
        if not self._created:
            return
        self._run("netns", "delete", self.name, check=False)
        with contextlib.suppress(OSError):
            if Path("/sys/class/net", self.host_interface).exists():
                self._run("link", "delete", self.host_interface, check=False)
        self._created = False

    def exists(self) -> bool:
        return Path("/run/netns", self.name).exists()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([self._ip, *args], check=check)


def _free_network(addr_json: str, route_json: str) -> ipaddress.IPv4Network:
    """A random /30 of NETWORK_POOL that no address or route of this host overlaps."""
    taken: list[ipaddress.IPv4Network] = []
    for link in json.loads(addr_json or "[]"):
        for info in link.get("addr_info", []):
            with contextlib.suppress(KeyError, ValueError):
                taken.append(
                    ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                )
    for route in json.loads(route_json or "[]"):
        destination = route.get("dst", "default")
        if destination != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(destination, strict=False))
    subnets = NETWORK_POOL.num_addresses // 4
    for _ in range(100):
        first = NETWORK_POOL.network_address + 4 * secrets.randbelow(subnets)
        candidate = ipaddress.IPv4Network(f"{first}/30")
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise SambaError(f"no free /30 in {NETWORK_POOL}: this host's routes cover it")


# -- the provisioned template ----------------------------------------------------------------


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
    completed = _run(command, check=False, timeout=PROVISION_TIMEOUT)
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


def _smb_conf(root: Path, address: str, prefixlen: int, log_level: str) -> str:
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


# -- the server ------------------------------------------------------------------------------


class SambaAD:
    """One throwaway Samba AD DC in its own network namespace: configure with the
    constructor, then `start()` (or `with`).

    Attributes after start: `address`, `url`, `ldaps_url`, `ca_file`, `workdir`,
    `log_path`, `namespace`; timings `provision_seconds` (the process-wide template's
    provisioning, shared by every instance), `setup_seconds` (namespace and copy),
    `start_seconds` (launch to ready, last start) and `seed_seconds`.
    """

    def __init__(
        self,
        *,
        seed_users: bool = True,
        log_level: str = DEFAULT_LOG_LEVEL,
        base_dir: Path | None = None,
    ) -> None:
        """
        Parameters:
            seed_users: add the seed users and groups (the OUs and the service account are
                always there).
            log_level: smb.conf `log level`; count_searches needs 5 or more.
            base_dir: where the temp directory is made (default: the system temp dir).
        """
        self.realm = REALM
        self.dns_domain = DNS_DOMAIN
        self.upn_suffix = DNS_DOMAIN
        self.netbios_domain = NETBIOS_DOMAIN
        self.host_name = HOST_NAME
        # The name in Samba's self-signed certificate (CN=DC1.idgate.test, no SAN).
        self.tls_server_name = f"{HOST_NAME}.{DNS_DOMAIN}".lower()
        self.base_dn = BASE_DN
        self.people_dn = f"OU=People,{BASE_DN}"
        self.contractors_dn = f"OU=Contractors,{BASE_DN}"
        self.services_dn = f"OU=Services,{BASE_DN}"
        self.groups_dn = f"OU=Groups,{BASE_DN}"
        self.admin_dn = f"CN=Administrator,CN=Users,{BASE_DN}"
        self.admin_user = f"{NETBIOS_DOMAIN}\\Administrator"
        self.admin_password = ADMIN_PASSWORD
        self.service_account = service_account()
        self.service_dn = self.service_account.dn
        self.service_upn = self.service_account.upn
        self.service_password = self.service_account.password
        self.users: dict[str, AdUser] = seed_user_records() if seed_users else {}
        self.groups: dict[str, tuple[str, ...]] = seed_group_members() if seed_users else {}
        self._log_level = log_level
        self._base_dir = base_dir
        self._installation: Installation | None = None
        self._namespace: NetworkNamespace | None = None
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._logs: list[Path] = []
        self._seeded = False
        self.provision_seconds = 0.0
        self.setup_seconds = 0.0
        self.start_seconds = 0.0
        self.seed_seconds = 0.0

    # -- addresses ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The DC's IPv4 address (inside its namespace, reachable from ours)."""
        return self._require_namespace().address

    @property
    def url(self) -> str:
        return f"ldap://{self.address}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}"

    @property
    def namespace(self) -> str:
        return self._require_namespace().name

    @property
    def ca_file(self) -> Path:
        """The CA Samba generated on first start; it signed the LDAPS certificate, whose
        only name is `tls_server_name` (not the IP address)."""
        return self.workdir / "private" / "tls" / "ca.pem"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise SambaError("not set up yet: call start()")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """The log of the current (or last) run."""
        if not self._logs:
            raise SambaError("never started")
        return self._logs[-1]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start Samba and wait until it answers LDAP and LDAPS.

        The first start creates the namespace, copies the provisioned template (the
        first server of the process provisions it) and seeds the directory; later starts
        reuse all of it, at the same address.

        Raises: SambaUnavailable (not installed, no namespaces); SambaError with the log
        tail when Samba does not come up within START_TIMEOUT seconds.
        """
        if self.running:
            return
        if self._workdir is None:
            self._setup()
        self._launch()
        if not self._seeded:
            began = time.perf_counter()
            self._seed()
            self.seed_seconds = time.perf_counter() - began
            self._seeded = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut Samba down cleanly (it ends when its stdin closes); SIGKILL after
        `timeout` seconds. Data, certificate and address stay for the next start()."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """End Samba at once (SIGKILL): a crashed or unplugged DC."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def close(self) -> None:
        """Kill Samba, delete the namespace (and veth pair) and the temp directory. The
        object cannot be started again."""
        self.kill()
        if self._namespace is not None:
            self._namespace.destroy()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> SambaAD:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.url if self._namespace is not None else "not started"
        return f"<SambaAD {self.realm} {where} {'running' if self.running else 'stopped'}>"

    # -- connections -------------------------------------------------------------------

    def tls(self) -> ldap3.Tls:
        """ldap3 TLS settings that verify the DC: its CA, and its certificate's name."""
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(self.ca_file),
            valid_names=[self.tls_server_name],
        )

    def server(self, *, ldaps: bool = False, connect_timeout: float = 5) -> ldap3.Server:
        """An ldap3 Server for the DC's address: ldap://, or ldaps:// verified with `tls()`."""
        if ldaps:
            return ldap3.Server(
                self.address, port=636, use_ssl=True, tls=self.tls(),
                get_info=ldap3.NONE, connect_timeout=connect_timeout,
            )  # fmt: skip
        return ldap3.Server(
            self.address, port=389, get_info=ldap3.NONE, connect_timeout=connect_timeout
        )

    def connection(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        ldaps: bool = False,
        **options: Any,
    ) -> ldap3.Connection:
        """A new, unbound ldap3 Connection (simple bind as `user`: a DN, a UPN or
        `IDGATE\\sam`). Close it with `close_quietly`."""
        options.setdefault("receive_timeout", 10)
        return ldap3.Connection(self.server(ldaps=ldaps), user=user, password=password, **options)

    @contextlib.contextmanager
    def admin_connection(self) -> Iterator[ldap3.Connection]:
        """An ldap3 connection bound as Administrator over LDAPS (AD only takes unicodePwd
        over an encrypted connection); unbound when the block ends."""
        conn = self.connection(self.admin_dn, self.admin_password, ldaps=True)
        try:
            try:
                bound = conn.bind()
            except LDAPException as exc:
                raise SambaError(f"bind as Administrator to {self.ldaps_url}: {exc}") from exc
            if not bound:
                raise SambaError(f"bind as Administrator failed: {conn.result['message']}")
            yield conn
        finally:
            close_quietly(conn)

    # -- helpers (as Administrator, raise SambaError on failure) -----------------------

    def add_user(self, sam: str, ou: str = "People", **options: Any) -> AdUser:
        """Add a user; returns its record. Options as `user_record`: password (default
        `Passw0rd!<sam>`, AD complexity rules apply), full_name (the CN), upn, uac
        (userAccountControl) and any attribute, e.g. `pwdLastSet=0`,
        `accountExpires=filetime(...)`."""
        user = user_record(sam, ou, purpose="added by a test", **options)
        with self.admin_connection() as conn:
            _write_user(conn, user)
        return user

    def add_group(self, cn: str, members: Sequence[str], ou: str = "Groups") -> str:
        """Add a global security group with these member DNs; AD sets their memberOf."""
        dn = f"CN={escape_rdn(cn)},OU={ou},{self.base_dn}"
        with self.admin_connection() as conn:
            _add(conn, dn, ["top", "group"], {"sAMAccountName": cn, "member": list(members)})
        return dn

    def modify(self, dn: str, changes: Mapping[str, Any]) -> None:
        """Modify an entry: {attribute: value | [values] | None (remove) |
        [(ldap3.MODIFY_ADD, [values]), ...]}."""
        with self.admin_connection() as conn:
            conn.modify(dn, {name: _change(value) for name, value in changes.items()})
            _check(conn, f"modify {dn}")

    def set_password(self, dn: str, password: str) -> None:
        """Administrator's password reset (the user need not change it unless pwdLastSet
        is set to 0 as well)."""
        self.modify(dn, {"unicodePwd": _unicode_pwd(password)})

    def delete(self, dn: str) -> None:
        """Delete a leaf entry."""
        with self.admin_connection() as conn:
            conn.delete(dn)
            _check(conn, f"delete {dn}")

    # -- the log -----------------------------------------------------------------------

    def count_binds(
        self, name: str | None = None, *, account: str | None = None, status: str | None = None
    ) -> int:
        """How many LDAP simple binds Samba checked (plain and TLS), over every start.

        name: only binds with this bind name as sent (DN, UPN or DOMAIN\\user; compared
            case-insensitively).
        account: only binds that resolved to this sAMAccountName, whatever name form.
        status: only this outcome, an NTSTATUS: "NT_STATUS_OK", "NT_STATUS_WRONG_PASSWORD",
            "NT_STATUS_ACCOUNT_DISABLED", "NT_STATUS_ACCOUNT_EXPIRED",
            "NT_STATUS_PASSWORD_MUST_CHANGE", "NT_STATUS_NO_SUCH_USER", ...
        Counts include the helpers' own Administrator binds: compare before and after.
        """
        count = 0
        for match in _AUTH.finditer(self.log_text()):
            bind_name = match["name"].replace("\\\\", "\\")
            if name is not None and _loose(bind_name) != _loose(name):
                continue
            if account is not None and match["account"].lower() != account.lower():
                continue
            if status is not None and match["status"] != status:
                continue
            count += 1
        return count

    def count_searches(self, contains: str | None = None) -> int:
        """How many LDAP searches Samba answered, over every start; with `contains`, only
        those whose filter or base DN contains this text (case-insensitive), e.g.
        "(sAMAccountName=alice)". Counts include the readiness probe's RootDSE reads.

        Raises: SambaError when the log level is below 5 (Samba logs no searches then).
        """
        level = int(self._log_level.split()[0].split(":")[-1])
        if level < 5:
            raise SambaError(f"count_searches needs log level 5 or more, not {self._log_level}")
        wanted = None if contains is None else contains.lower()
        return sum(
            1
            for match in _SEARCH.finditer(self.log_text())
            if wanted is None or wanted in f"{match['filter']} {match['base']}".lower()
        )

    def log_text(self) -> str:
        """Every run's log, oldest first."""
        return "".join(path.read_text(errors="replace") for path in self._logs if path.exists())

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the current run's log (for error messages)."""
        if not self._logs or not self._logs[-1].exists():
            return "(no log)"
        return "\n".join(self._logs[-1].read_text(errors="replace").splitlines()[-lines:])

    # -- internals ---------------------------------------------------------------------

    def _require_namespace(self) -> NetworkNamespace:
        if self._namespace is None:
            raise SambaError("not started yet: call start()")
        return self._namespace

    def _setup(self) -> None:
        self._installation = find_installation()
        _remove_stale_once(self._installation)
        began = time.perf_counter()
        namespace = NetworkNamespace(self._installation.ip)
        namespace.create()
        self._namespace = namespace
        _LIVE.add(self)
        self.setup_seconds = time.perf_counter() - began
        try:
            template = shared_template(self._installation)
            self.provision_seconds = template.provision_seconds
            began = time.perf_counter()
            self._workdir = workdir = Path(
                tempfile.mkdtemp(prefix=f"{NAME_PREFIX}{os.getpid()}-", dir=self._base_dir)
            )
            shutil.copytree(template.path, workdir, symlinks=True, dirs_exist_ok=True)
            (workdir / "log").mkdir(exist_ok=True)
            config = _smb_conf(workdir, namespace.address, namespace.network.prefixlen,
                               self._log_level)  # fmt: skip
            (workdir / "etc" / "smb.conf").write_text(config)
            self.setup_seconds += time.perf_counter() - began
        except BaseException:
            self.close()
            raise

    def _launch(self) -> None:
        assert self._installation is not None and self._namespace is not None
        log_path = self.workdir / "log" / f"samba.{len(self._logs)}.log"
        self._logs.append(log_path)
        command = [
            *_die_with_parent(),
            *self._namespace.exec_prefix(),
            str(self._installation.samba),
            "--interactive",  # foreground, log to stdout, and end when stdin closes
            "--model=single",  # one process: one pid to signal, no forks per connection
            f"--configfile={self.workdir / 'etc' / 'smb.conf'}",
        ]
        began = time.perf_counter()
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                # A pipe nobody writes to: Samba stops when it closes, which is also what
                # happens when this process dies, however it dies.
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_samba_environment(),
            )
        _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.perf_counter() - began

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            exit_code = self._process.poll()
            if exit_code is not None:
                raise SambaError(
                    f"samba exited with status {exit_code}; log tail:\n{self.log_tail()}"
                )
            if (
                self.ca_file.exists()
                and _accepts(self.address, 636)
                and _answers_rootdse(self.address, 389)
            ):
                return
            if time.monotonic() > deadline:
                raise SambaError(
                    f"samba not ready on {self.address} after {START_TIMEOUT:.0f} s;"
                    f" log tail:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _seed(self) -> None:
        with self.admin_connection() as conn:
            for ou in OUS:
                _add(conn, f"OU={ou},{self.base_dn}", ["top", "organizationalUnit"], {})
            _write_user(conn, self.service_account)
            for user in self.users.values():
                _write_user(conn, user)
            for dn, members in self.groups.items():
                name = dn.split(",", 1)[0].split("=", 1)[1]
                _add(conn, dn, ["top", "group"], {"sAMAccountName": name, "member": list(members)})


# `Auth: [LDAP,simple bind/TLS] user [IDGATE]\[alice@idgate.test] at [...] with [Plaintext]
#  status [NT_STATUS_OK] ... became [IDGATE]\[alice] [S-1-5-...]` (or `mapped to [..]\[..]`)
_AUTH = re.compile(
    r"^Auth: \[LDAP,simple bind(?:/TLS)?\] user \[[^\]]*\]\\\[(?P<name>.*?)\] at \[.*?\]"
    r" with \[[^\]]*\] status \[(?P<status>\w+)\].*?"
    r"(?:became|mapped to) \[[^\]]*\]\\\[(?P<account>[^\]]*)\]",
    re.MULTILINE,
)
# `ldapsrv_SearchRequest: LDAP Query: Duration was 0.00s, SearchRequest by S-1-5-... from
#  ipv4:10.231.7.1:49853 filter: [(sAMAccountName=x)] basedn: [DC=...] scope: [SUB] ...`
# (also the "Long LDAP Query" and "MaxQueryDuration ... exceeded" variants).
_SEARCH = re.compile(
    r"SearchRequest by \S+ from \S+ filter: \[(?P<filter>.*?)\] basedn: \[(?P<base>.*?)\]"
)


def _loose(name: str) -> str:
    return re.sub(r"\s*([,=+])\s*", r"\1", name.strip()).lower()


def _unicode_pwd(password: str) -> bytes:
    # [MS-ADTS] 3.1.1.3.1.5.1: the password in double quotes, UTF-16LE.
    return f'"{password}"'.encode("utf-16-le")


def _as_strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _write_user(conn: ldap3.Connection, user: AdUser) -> None:
    attributes: dict[str, Any] = {name: list(values) for name, values in user.attributes.items()}
    # unicodePwd in the same add: the account is never enabled without its password.
    attributes["unicodePwd"] = _unicode_pwd(user.password)
    _add(conn, user.dn, ["top", "person", "organizationalPerson", "user"], attributes)


def _add(conn: ldap3.Connection, dn: str, classes: list[str], attributes: dict[str, Any]) -> None:
    conn.add(dn, classes, attributes)
    _check(conn, f"add {dn}")


def _check(conn: ldap3.Connection, what: str) -> None:
    if conn.result["result"] != 0:
        raise SambaError(f"{what}: {conn.result['description']} {conn.result['message']}")


def _samba_environment() -> dict[str, str]:
    # samba-tool is Debian's /usr/bin/python3 program: a virtualenv's or pyenv's Python
    # settings must not leak into it.
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


def _run(
    command: list[str], *, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=_samba_environment(),
        stdin=subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        raise SambaError(f"{' '.join(command)} failed:\n{completed.stderr.strip()}")
    return completed


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _answers_rootdse(host: str, port: int) -> bool:
    # A plain TCP connect first: ldap3 leaks its socket when a connect is refused.
    if not _accepts(host, port):
        return False
    server = ldap3.Server(host, port=port, get_info=ldap3.NONE, connect_timeout=0.5)
    conn = ldap3.Connection(server, receive_timeout=2)
    try:
        conn.open()
        return bool(
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["defaultNamingContext"])
        )
    except LDAPException:
        return False
    finally:
        close_quietly(conn)


# -- never leave a DC, a namespace or a directory behind ------------------------------------

_LIVE: set[SambaAD] = set()


def _close_all() -> None:
    for server in list(_LIVE):
        server.close()


atexit.register(_close_all)


class _Stale(NamedTuple):
    namespaces: list[str]
    directories: list[Path]


_stale_lock = threading.Lock()
_stale_checked = False


def _remove_stale_once(installation: Installation) -> None:
    """Remove what a SIGKILLed earlier run left: its namespaces (and so veth pairs) and temp
    directories, recognised by the dead pid in their names. Once per process."""
    global _stale_checked
    with _stale_lock:
        if _stale_checked:
            return
        _stale_checked = True
        stale = _find_stale(installation)
        for name in stale.namespaces:
            _run([str(installation.ip), "netns", "delete", name], check=False)
        for directory in stale.directories:
            shutil.rmtree(directory, ignore_errors=True)


def _find_stale(installation: Installation) -> _Stale:
    owner = re.compile(rf"^{re.escape(NAME_PREFIX)}(\d+)-")
    listing = _run([str(installation.ip), "-j", "netns", "list"], check=False).stdout
    names = [entry["name"] for entry in json.loads(listing or "[]")]
    directories = list(Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}*"))

    def dead(name: str) -> bool:
        match = owner.match(name)
        return match is not None and not _alive(int(match[1]))

    return _Stale(
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
