"""A throwaway Samba Active Directory domain controller, the AD upstream of the tests.

Samba's LDAP ports are fixed (389/636, and 3268/3269 for the global catalog), so each
`SambaAD` runs in a network namespace of its own (`idgate-samba-<pid>-<hex>`), joined to
the test process by a veth pair on a random /30 of 10.231.0.0/16: the host side is .1, the
DC .2 (samba_netns.py). These addresses exist only on this machine; nothing else is ever
contacted.

The domain (realm IDGATE.TEST, NetBIOS domain IDGATE, host DC1; samba_domain.py) is
provisioned offline with `samba-tool domain provision` once per process into a template
directory (`Template`, samba_provision.py); each server copies it, writes its own smb.conf
(every path inside its temp dir), runs `samba -i -M single` inside the namespace and, on its
first start, seeds OUs, users and groups over LDAPS as Administrator (samba_seed.py).
Nothing here imports pytest.

    with SambaAD() as dc:                  # provision once, copy, start, seed; on exit remove
        dc.url                             # ldap://10.231.X.Y (plain simple binds allowed)
        dc.ldaps_url, dc.ca_file, dc.tls_server_name
        dc.users["alice"].upn              # alice@idgate.test
        dc.count_binds(account="alice")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ldap3
from ldap3.utils.dn import escape_rdn

from tests.servers import samba_log
from tests.servers.ldap_client import (
    accepts,
    answers_rootdse,
    bound,
    check,
    modify_changes,
)
from tests.servers.process import ServerProcess, close_stdin
from tests.servers.samba_domain import (
    ACCOUNT_NEVER_EXPIRES,
    ADMIN_PASSWORD,
    BASE_DN,
    DNS_DOMAIN,
    HOST_NAME,
    NETBIOS_DOMAIN,
    QUERY_POLICY_DN,
    QUERY_POLICY_LIMITS,
    REALM,
    SAMBA_ENFORCED_LIMITS,
    UF_ACCOUNTDISABLE,
    UF_NORMAL_ACCOUNT,
    UF_PASSWORD_EXPIRED,
    filetime,
    from_filetime,
    unicode_pwd,
)
from tests.servers.samba_install import (
    Installation,
    SambaError,
    SambaUnavailable,
    find_installation,
    samba_environment,
)
from tests.servers.samba_leftovers import NAME_PREFIX, remove_stale_once
from tests.servers.samba_log import DEFAULT_LOG_LEVEL
from tests.servers.samba_netns import NetworkNamespace
from tests.servers.samba_provision import Template, shared_template, smb_conf
from tests.servers.samba_seed import (
    AdUser,
    seed_group_members,
    seed_user_records,
    service_account,
    user_record,
    write_group,
    write_seed,
    write_user,
)

# The names other modules import from here (the server, its errors, AD's constants and
# helpers); they live in the samba_* modules.
__all__ = [
    "ACCOUNT_NEVER_EXPIRES",
    "QUERY_POLICY_DN",
    "SAMBA_ENFORCED_LIMITS",
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

START_TIMEOUT = 30.0  # the first start also makes a 4096-bit RSA key for LDAPS
STOP_TIMEOUT = 10.0


class SambaAD(ServerProcess):
    """One throwaway Samba AD DC in its own network namespace: configure with the
    constructor, then `start()` (or `with`). `stop()` closes Samba's stdin (`samba -i`
    ends on EOF); lifecycle, logs and teardown as in `ServerProcess`.

    Attributes after start: `address`, `url`, `ldaps_url`, `ca_file`, `workdir`,
    `log_path`, `namespace`; timings `provision_seconds` (the process-wide template's
    provisioning, shared by every instance), `setup_seconds` (namespace and copy),
    `start_seconds` (launch to ready, last start) and `seed_seconds`.
    """

    program = "samba"
    _error = SambaError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.02

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
        super().__init__()
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
        self.query_policy_dn = QUERY_POLICY_DN
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
        self._seeded = False
        self.provision_seconds = 0.0
        self.setup_seconds = 0.0
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
        self._launch(
            self._command(),
            log_dir=self.workdir / "log",
            stdin=subprocess.PIPE,
            env=samba_environment(),
        )
        if not self._seeded:
            began = time.perf_counter()
            self._seed()
            self.seed_seconds = time.perf_counter() - began
            self._seeded = True

    def close(self) -> None:
        """Kill Samba, delete the namespace (and veth pair) and the temp directory. The
        object cannot be started again."""
        super().close()
        if self._namespace is not None:
            self._namespace.destroy()

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
        # AD says why it refused a bind in the message ("... data 52e ...").
        with bound(
            conn, who="Administrator", where=self.ldaps_url, error=SambaError, reason="message"
        ):
            yield conn

    # -- helpers (as Administrator, raise SambaError on failure) -----------------------

    def add_user(self, sam: str, ou: str = "People", **options: Any) -> AdUser:
        """Add a user; returns its record. Options as `user_record`: password (default
        `Passw0rd!<sam>`, AD complexity rules apply), full_name (the CN), upn, uac
        (userAccountControl) and any attribute, e.g. `pwdLastSet=0`,
        `accountExpires=filetime(...)`."""
        user = user_record(sam, ou, purpose="added by a test", **options)
        with self.admin_connection() as conn:
            write_user(conn, user)
        return user

    def add_users(
        self, count: int, prefix: str = "bulk", ou: str = "People", *, passwords: bool = False
    ) -> list[AdUser]:
        """Add `count` users `<prefix>0000`, `<prefix>0001`, ... (CN `<prefix> 0000`, ...)
        over one Administrator connection; returns their records, in order.

        Without `passwords` they have none and are disabled (userAccountControl 0x202): ~6 ms
        a user here, enough for paging and size tests (a disabled account is still found by
        `(&(objectClass=user)(objectCategory=person))`). With `passwords` they are active,
        with `Passw0rd!<sam>`, and cost ~25 ms each (Samba derives the Kerberos keys).
        sAMAccountName is at most 20 characters: keep `prefix` to 16.
        """
        if len(prefix) + 4 > 20:
            raise ValueError(f"prefix {prefix!r}: sAMAccountName would exceed 20 characters")
        state: dict[str, Any] = (
            {} if passwords else {"password": "", "uac": UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE}
        )
        records = [
            user_record(
                f"{prefix}{i:04d}", ou,
                full_name=f"{prefix} {i:04d}", purpose="bulk user added by a test", **state,
            )
            for i in range(count)
        ]  # fmt: skip
        with self.admin_connection() as conn:
            for user in records:
                write_user(conn, user)
        return records

    def add_group(self, cn: str, members: Sequence[str], ou: str = "Groups") -> str:
        """Add a global security group with these member DNs; AD sets their memberOf."""
        dn = f"CN={escape_rdn(cn)},OU={ou},{self.base_dn}"
        with self.admin_connection() as conn:
            write_group(conn, dn, cn, members)
        return dn

    def modify(self, dn: str, changes: Mapping[str, Any]) -> None:
        """Modify an entry: {attribute: value | [values] | None (remove) |
        [(ldap3.MODIFY_ADD, [values]), ...]}."""
        with self.admin_connection() as conn:
            conn.modify(dn, modify_changes(changes))
            check(conn, f"modify {dn}", SambaError)

    def set_password(self, dn: str, password: str) -> None:
        """Administrator's password reset (the user need not change it unless pwdLastSet
        is set to 0 as well)."""
        self.modify(dn, {"unicodePwd": unicode_pwd(password)})

    def delete(self, dn: str) -> None:
        """Delete a leaf entry."""
        with self.admin_connection() as conn:
            conn.delete(dn)
            check(conn, f"delete {dn}", SambaError)

    # -- the LDAP query policy (lDAPAdminLimits) ------------------------------------------

    def query_policy(self) -> dict[str, int]:
        """The Default Query Policy's lDAPAdminLimits, e.g. {"MaxPageSize": 1000, ...}."""
        with self.admin_connection() as conn:
            return _read_query_policy(conn)

    def set_query_policy(self, **limits: int) -> dict[str, int]:
        """Change limits of the Default Query Policy (the others stay); returns the policy as
        it was, to restore with `set_query_policy(**previous)`.

        No restart needed: Samba reads the policy each time it accepts a connection, so the
        new values hold for connections opened afterwards and never for those already open.
        Samba 4.17 acts only on `SAMBA_ENFORCED_LIMITS` (InitRecvTimeout, MaxConnIdleTime,
        MaxNotificationPerConn, MaxQueryDuration, all in seconds but the third); it stores
        and ignores the rest, MaxPageSize and MaxResultSetSize included. A 0 means "the
        default" to Samba. Keep the timeouts generous on a DC other tests use.

        Raises: ValueError for a name that is not an AD query-policy limit ([MS-ADTS]
        3.1.1.3.4.6, QUERY_POLICY_LIMITS) or a negative value; SambaError when the modify
        fails.
        """
        unknown = sorted(set(limits) - QUERY_POLICY_LIMITS)
        if unknown:
            raise ValueError(f"not AD query-policy limits: {', '.join(unknown)}")
        negative = sorted(name for name, value in limits.items() if value < 0)
        if negative:
            raise ValueError(f"negative limits: {', '.join(negative)}")
        with self.admin_connection() as conn:
            previous = _read_query_policy(conn)
            wanted = {**previous, **{name: int(value) for name, value in limits.items()}}
            values = [f"{name}={value}" for name, value in sorted(wanted.items())]
            conn.modify(self.query_policy_dn, {"lDAPAdminLimits": [(ldap3.MODIFY_REPLACE, values)]})
            check(conn, f"modify lDAPAdminLimits of {self.query_policy_dn}", SambaError)
        return previous

    def set_max_page_size(self, size: int) -> dict[str, int]:
        """`set_query_policy(MaxPageSize=size)`. Samba 4.17 ignores it (see there): a test
        that needs the server to cut pages short needs Windows AD."""
        return self.set_query_policy(MaxPageSize=size)

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
        return samba_log.count_binds(self.log_text(), name, account=account, status=status)

    def count_searches(self, contains: str | None = None) -> int:
        """How many LDAP searches Samba answered, over every start; with `contains`, only
        those whose filter or base DN contains this text (case-insensitive), e.g.
        "(sAMAccountName=alice)". Counts include the readiness probe's RootDSE reads.

        Raises: SambaError when the log level is below 5 (Samba logs no searches then).
        """
        if not samba_log.logs_searches(self._log_level):
            raise SambaError(f"count_searches needs log level 5 or more, not {self._log_level}")
        return samba_log.count_searches(self.log_text(), contains)

    # -- internals ---------------------------------------------------------------------

    def _require_namespace(self) -> NetworkNamespace:
        if self._namespace is None:
            raise SambaError("not started yet: call start()")
        return self._namespace

    def _setup(self) -> None:
        self._installation = find_installation()
        remove_stale_once(self._installation)
        began = time.perf_counter()
        namespace = NetworkNamespace(self._installation.ip)
        namespace.create()
        self._namespace = namespace
        self._close_at_exit()
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
            config = smb_conf(workdir, namespace.address, namespace.network.prefixlen,
                               self._log_level)  # fmt: skip
            (workdir / "etc" / "smb.conf").write_text(config)
            self.setup_seconds += time.perf_counter() - began
        except BaseException:
            self.close()
            raise

    def _command(self) -> list[str]:
        assert self._installation is not None
        return [
            *self._require_namespace().exec_prefix(),
            str(self._installation.samba),
            "--interactive",  # foreground, log to stdout, and end when stdin closes
            "--model=single",  # one process: one pid to signal, no forks per connection
            f"--configfile={self.workdir / 'etc' / 'smb.conf'}",
        ]

    def _ready(self) -> bool:
        return (
            self.ca_file.exists()
            and accepts(self.address, 636)
            and answers_rootdse(self.address, 389, "defaultNamingContext")
        )

    def _location(self) -> str:
        return self.address

    def _ask_to_stop(self, process: subprocess.Popen[bytes]) -> None:
        # Its stdin is a pipe nobody writes to: Samba stops when it closes, which is also
        # what happens when this process dies, however it dies.
        close_stdin(process)

    def _seed(self) -> None:
        with self.admin_connection() as conn:
            write_seed(conn, self.service_account, self.users.values(), self.groups)


def _read_query_policy(conn: ldap3.Connection) -> dict[str, int]:
    conn.search(QUERY_POLICY_DN, "(objectClass=queryPolicy)", ldap3.BASE,
                attributes=["lDAPAdminLimits"])  # fmt: skip
    check(conn, f"read {QUERY_POLICY_DN}", SambaError)
    if not conn.response or conn.response[0].get("type") != "searchResEntry":
        raise SambaError(f"no {QUERY_POLICY_DN}")
    policy: dict[str, int] = {}
    for raw in conn.response[0]["raw_attributes"].get("lDAPAdminLimits", []):
        name, _, value = raw.decode().partition("=")
        policy[name] = int(value)
    return policy
