"""A throwaway OpenLDAP `slapd`, the upstream directory of the tests and benchmarks.

Each `Slapd` owns a temp directory with its cn=config (built by `slapadd -n0`), an mdb
database loaded with the seed (see seed.py), a log per start and, with TLS, the listener
on ldaps://. slapd runs in the foreground (`-d stats`) in its own process group, so the log
records every operation and one signal ends it. Nothing here imports pytest.

    with Slapd() as server:                 # builds, starts, and on exit kills and removes
        server.url                          # ldap://127.0.0.1:<port>
        server.users["alice"].password
        server.count_operations("SRCH", contains="(uid=alice)")

To play a hostile directory: `limits=`/`set_limits()` (olcLimits, olcSizeLimit,
olcTimeLimit), `set_delay()` (every operation sleeps first, so a time limit strikes),
`make_referral()` (a root that answers with a referral), `kill()` between two pages.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import escape_rdn, parse_dn, to_dn

from tests.servers import seed
from tests.servers.ldap_client import (
    answers_rootdse,
    bound,
    check,
    close_quietly,
    loose_dn,
    modify_changes,
)
from tests.servers.process import ServerProcess
from tests.servers.slapd_config import (
    CONFIG_DN,
    CONFIG_PASSWORD,
    DEFAULT_LIMITS,
    MANAGE_DSA_IT_CONTROL,
    MDB_DN,
    PPOLICY_CONTROL,
    ROOT_PASSWORD,
    Installation,
    SlapdError,
    SlapdNotInstalled,
    config_ldif,
    find_installation,
)
from tests.servers.tls import TlsFiles, shared_tls_files

__all__ = [
    "DEFAULT_LIMITS",
    "MANAGE_DSA_IT_CONTROL",
    "PPOLICY_CONTROL",
    "Slapd",
    "SlapdError",
    "SlapdNotInstalled",
    "close_quietly",
    "find_installation",
]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class _AddressInUse(SlapdError):
    """A listener port was taken between choosing it and slapd binding it."""


class Slapd(ServerProcess):
    """One throwaway slapd: configure with the constructor, then `start()` (or `with`).
    `stop()` sends SIGTERM; lifecycle, logs and teardown as in `ServerProcess`.

    Attributes after start: `url`, `port`, `ldaps_url`/`ldaps_port` (TLS only), `ca_file`
    (TLS only), `start_seconds` (launch to ready, last start), `workdir`, `log_path`.
    """

    program = "slapd"
    _error = SlapdError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.005

    def __init__(
        self,
        *,
        suffix: str = seed.DEFAULT_SUFFIX,
        tls: bool = False,
        tls_files: TlsFiles | None = None,
        seed_users: bool = True,
        debug_level: str = "stats",
        base_dir: Path | None = None,
        limits: Sequence[str] | None = None,
        size_limit: int | None = None,
        time_limit: int | None = None,
    ) -> None:
        """
        Parameters:
            suffix: naming context of the mdb database.
            tls: also listen on ldaps:// and offer StartTLS; certificates are `tls_files`
                or, by default, the process-wide throwaway CA (`shared_tls_files()`).
            seed_users: load the seed users and groups (suffix, OUs, policy and service
                account are always there).
            debug_level: slapd `-d` level; count_operations needs `stats`.
            base_dir: where the temp directory is made (default: the system temp dir).
            limits: the olcLimits values of the mdb database, e.g.
                `["users size.soft=500 size.hard=500 time=1"]`; None: DEFAULT_LIMITS (plain
                searches capped at 500, paged ones unlimited); []: no olcLimits at all.
            size_limit, time_limit: olcSizeLimit and olcTimeLimit of the mdb database
                (None: unset, slapd's defaults of 500 entries and 3600 s): the limits of the
                clients no `limits` clause matches (with `limits=[]`, all but the rootDN).
                A clause does not inherit them: what it leaves out is slapd's default.
        """
        try:
            first_rdn = parse_dn(suffix)[0]
        except LDAPException as exc:
            raise SlapdError(f"invalid suffix {suffix!r}: {exc}") from exc
        if first_rdn[0].lower() != "dc":
            # The seed's top entry is a dcObject.
            raise SlapdError(f"invalid suffix {suffix!r}: it must start with dc=")
        super().__init__()
        self.suffix = suffix
        self.root_dn = f"cn=admin,{suffix}"
        self.root_password = ROOT_PASSWORD
        self.config_dn = CONFIG_DN
        self.config_password = CONFIG_PASSWORD
        self.people_dn = f"{seed.PEOPLE},{suffix}"
        self.contractors_dn = f"{seed.CONTRACTORS},{suffix}"
        self.groups_dn = f"{seed.GROUPS},{suffix}"
        self.policy_dn = f"{seed.DEFAULT_POLICY},{suffix}"
        self.service_dn = f"{seed.SERVICE_ACCOUNT},{suffix}"
        self.service_password = seed.SERVICE_PASSWORD
        self.users: dict[str, seed.SeedUser] = seed.seed_users(suffix) if seed_users else {}
        self.groups: dict[str, tuple[str, ...]] = seed.seed_groups(suffix) if seed_users else {}
        self.tls = tls
        self._tls_files = tls_files
        self._debug_level = debug_level
        self._base_dir = base_dir
        self.limits = tuple(DEFAULT_LIMITS if limits is None else limits)
        self.size_limit = size_limit
        self.time_limit = time_limit
        self._retcode_dn: str | None = None  # the overlay of set_delay, once added
        self._installation: Installation | None = None
        self._parsed: list[_LogRecord] = []
        self._parsed_offsets: dict[int, int] = {}
        self._parse_lock = threading.Lock()
        self._seeded = False
        self.port = 0
        self.ldaps_port = 0

    # -- addresses ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self._require_port()}"

    @property
    def ldaps_url(self) -> str:
        if not self.tls:
            raise SlapdError("ldaps_url: this Slapd was made without tls=True")
        self._require_port()
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        """PEM of the CA that signed the server certificate (TLS only)."""
        return self._tls().ca_file

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start slapd and wait until it answers a RootDSE search.

        The first start builds cn=config and loads the seed; later starts reuse the data
        and the ports (a stopped server comes back at the same URL, as failover tests
        expect).

        Raises: SlapdNotInstalled; SlapdError with the log tail when slapd does not come
        up within START_TIMEOUT seconds.
        """
        if self.running:
            return
        first = self._workdir is None
        if first:
            self._build()
        attempts = 5 if first else 1
        for attempt in range(attempts):
            if first:
                self._choose_ports()
            try:
                self._launch(self._command(), log_dir=self.workdir)
                break
            except _AddressInUse:
                # slapd cannot listen on port 0 and say where: its port is probed, and
                # another process may take it before slapd binds. Said, then tried again.
                if attempt == attempts - 1:
                    raise
                print(f"{self!r}: port {self.port} was taken meanwhile; another", file=sys.stderr)
        if not self._seeded:
            self._seed_groups()
            self._seeded = True

    def __repr__(self) -> str:
        where = self.url if self.port else "not started"
        return f"<Slapd {self.suffix} {where} {'running' if self.running else 'stopped'}>"

    # -- connections and helpers -------------------------------------------------------

    @contextlib.contextmanager
    def admin_connection(self) -> Iterator[ldap3.Connection]:
        """An ldap3 connection bound as the rootDN (ACLs and ppolicy do not apply);
        unbound when the block ends."""
        with self._connection(self.root_dn, self.root_password) as conn:
            yield conn

    @contextlib.contextmanager
    def config_connection(self) -> Iterator[ldap3.Connection]:
        """An ldap3 connection bound as cn=admin,cn=config, to change the configuration
        at run time (e.g. the ppolicy overlay under olcDatabase={1}mdb,cn=config)."""
        with self._connection(self.config_dn, self.config_password) as conn:
            yield conn

    def add_user(self, uid: str, ou: str = "people", **attrs: Any) -> str:
        """Add an inetOrgPerson `uid=<uid>,ou=<ou>,<suffix>`; returns its DN.

        cn, sn and mail default from `uid`; any attribute may be given (a str, bytes, int
        or a list of them), userPassword included (stored as given). shadowAccount is
        added when a shadow* attribute is given and objectClass is not.
        """
        dn = f"uid={escape_rdn(uid)},ou={ou},{self.suffix}"
        attributes: dict[str, Any] = {
            "uid": uid,
            "cn": uid,
            "sn": uid,
            "mail": f"{uid}@{seed.MAIL_DOMAIN}",
            **attrs,
        }
        object_classes = attributes.pop("objectClass", None)
        if object_classes is None:
            object_classes = ["inetOrgPerson"]
            if any(name.lower().startswith("shadow") for name in attributes):
                object_classes.append("shadowAccount")
        with self.admin_connection() as conn:
            conn.add(dn, object_classes, attributes)
            check(conn, f"add {dn}", SlapdError)
        return dn

    def add_group(self, cn: str, members: Sequence[str], ou: str = "groups") -> str:
        """Add a groupOfNames (the memberof overlay then sets memberOf on the members)."""
        dn = f"cn={escape_rdn(cn)},ou={ou},{self.suffix}"
        with self.admin_connection() as conn:
            conn.add(dn, ["groupOfNames"], {"cn": cn, "member": list(members)})
            check(conn, f"add {dn}", SlapdError)
        return dn

    def modify(self, dn: str, changes: Mapping[str, Any]) -> None:
        """Modify an entry as the rootDN.

        `changes` maps an attribute to its new value(s) (replace), or to None (remove the
        attribute; no error if absent), or to ldap3's own form
        `[(ldap3.MODIFY_ADD, [values]), ...]` for anything finer.
        """
        with self.admin_connection() as conn:
            conn.modify(dn, modify_changes(changes))
            check(conn, f"modify {dn}", SlapdError)

    def delete(self, dn: str) -> None:
        """Delete an entry (a leaf) as the rootDN."""
        with self.admin_connection() as conn:
            conn.delete(dn)
            check(conn, f"delete {dn}", SlapdError)

    def rename(self, dn: str, new_rdn: str, new_superior: str | None = None) -> str:
        """ModifyDN as the rootDN (the old RDN value is removed); returns the new DN."""
        with self.admin_connection() as conn:
            conn.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=new_superior)
            check(conn, f"rename {dn}", SlapdError)
        parent = new_superior if new_superior is not None else ",".join(to_dn(dn)[1:])
        return f"{new_rdn},{parent}"

    # -- a hostile directory -----------------------------------------------------------

    def set_limits(
        self,
        limits: Sequence[str] | None = None,
        *,
        size_limit: int | None = None,
        time_limit: int | None = None,
    ) -> None:
        """Change the limits of the mdb database at run time, over cn=config. Arguments as
        the constructor's, and each replaces what was set (`set_limits()` restores the
        defaults). Operations that arrive afterwards use them: a paged search under way
        from its next page on. They outlive a restart (cn=config is saved).

        Raises: SlapdError when slapd refuses a value (e.g. `size.pr=disabled`).
        """
        values = tuple(DEFAULT_LIMITS if limits is None else limits)
        numbers = {"olcSizeLimit": size_limit, "olcTimeLimit": time_limit}
        with self.config_connection() as conn:
            conn.search(MDB_DN, "(objectClass=*)", ldap3.BASE, attributes=[*numbers, "olcLimits"])
            check(conn, "read the limits", SlapdError)
            present = {name for name, got in conn.response[0]["attributes"].items() if got}
            # slapd copies into a clause what it leaves out from the database limits of the
            # moment it parses it; at start that is before it reads them (slapd's defaults).
            # The same order here: old ones off, clauses, new ones on. (cn=config refuses to
            # remove an attribute that is not there: noSuchAttribute.)
            steps = [
                {name: [(ldap3.MODIFY_DELETE, [])] for name in numbers if name in present},
                {"olcLimits": [(ldap3.MODIFY_REPLACE, list(values))]}
                if values or "olcLimits" in present
                else {},
                {
                    name: [(ldap3.MODIFY_ADD, [str(value)])]
                    for name, value in numbers.items()
                    if value is not None
                },
            ]
            for changes in steps:
                if changes:
                    conn.modify(MDB_DN, changes)
                    check(conn, f"set limits {values} {numbers}", SlapdError)
        self.limits, self.size_limit, self.time_limit = values, size_limit, time_limit

    def set_delay(self, seconds: int) -> None:
        """Make slapd sleep `seconds` before it handles each operation on the data (binds
        included; cn=config and the RootDSE are not delayed); 0 ends it. It is slapo-retcode's
        olcRetcodeSleep, the overlay added on the first call.

        A search's time limit runs from its arrival and slapd compares whole seconds, so a
        delay of at least limit + 1 makes every search (every page) answer
        timeLimitExceeded, without fail: e.g. `time=1` in `limits` and `set_delay(2)`.
        """
        if seconds < 0:
            raise SlapdError(f"set_delay({seconds}): a delay is 0 or more seconds")
        with self.config_connection() as conn:
            if self._retcode_dn is None:
                self._retcode_dn = self._add_retcode_overlay(conn)
            conn.modify(
                self._retcode_dn, {"olcRetcodeSleep": [(ldap3.MODIFY_REPLACE, [str(seconds)])]}
            )
            check(conn, f"set delay {seconds}", SlapdError)

    def make_referral(self, dn: str, url: str | None = None) -> str:
        """Turn the entry `dn` into a referral object (RFC 3296 §2: objectClass referral and
        extensibleObject, its RDN kept, `ref: url`): what was under it is deleted, as it
        now lives on the other server. Afterwards a search based at or below `dn` answers
        referral (10) with `url`, and one above it returns a continuation reference.

        url: default `ldap://elsewhere.example/<dn>`. Returns the url.
        """
        url = url if url is not None else f"ldap://elsewhere.example/{dn}"
        attribute, value, _ = parse_dn(dn)[0]
        # ManageDsaIT (RFC 3296 §3): act on referral objects themselves instead of being
        # referred elsewhere, in case `dn` or one below it is one already.
        manage = [(MANAGE_DSA_IT_CONTROL, True, None)]
        with self.admin_connection() as conn:
            conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"], controls=manage)
            check(conn, f"search {dn}", SlapdError)
            below = [item["dn"] for item in conn.response if item["type"] == "searchResEntry"]
            for doomed in sorted(below, key=lambda d: len(to_dn(d)), reverse=True):
                conn.delete(doomed, controls=manage)
                check(conn, f"delete {doomed}", SlapdError)
            conn.add(
                dn,
                ["referral", "extensibleObject"],
                {attribute: value, "ref": url},
                controls=manage,
            )
            check(conn, f"add referral {dn}", SlapdError)
        return url

    # -- the operation log -------------------------------------------------------------

    def count_operations(self, kind: str = "SRCH", contains: str | None = None) -> int:
        """How many operations of `kind` slapd has logged, over every start.

        kind: the stats keyword: SRCH, BIND, ADD, MOD, MODRDN, DEL, CMP, EXT, UNBIND, ...
        contains: count only operations one of whose `kind` lines contains this text,
            e.g. a filter `"(uid=alice)"` or `'base="ou=people'`.
        An operation is counted once although slapd logs several lines for it (a search
        logs `SRCH base=...` and `SRCH attr=...`). Counts include the helpers' and the
        readiness probe's own operations (one anonymous base="" search per start), so
        tests compare counts before and after what they do.
        """
        return len(
            {
                (record.run, record.conn, record.op)
                for record in self._records()
                if record.kind == kind and (contains is None or contains in record.rest)
            }
        )

    def count_binds(self, dn: str | None = None) -> int:
        """How many bind requests slapd received (any outcome), optionally only those for
        `dn` (compared case- and space-insensitively; "" counts anonymous binds)."""
        wanted = None if dn is None else loose_dn(dn)
        seen: set[tuple[int, str, str]] = set()
        for record in self._records():
            match = _BIND_REQUEST.match(record.rest) if record.kind == "BIND" else None
            if match and (wanted is None or loose_dn(match["dn"]) == wanted):
                seen.add((record.run, record.conn, record.op))
        return len(seen)

    def count_connections(self) -> int:
        """How many connections slapd accepted, over every start."""
        return sum(1 for record in self._records() if record.kind == "ACCEPT")

    # -- internals ---------------------------------------------------------------------

    def _require_port(self) -> int:
        if not self.port:
            raise SlapdError("not started yet: call start()")
        return self.port

    def _tls(self) -> TlsFiles:
        if not self.tls:
            raise SlapdError("no TLS: this Slapd was made without tls=True")
        if self._tls_files is None:
            self._tls_files = shared_tls_files()
        return self._tls_files

    def _build(self) -> None:
        self._installation = find_installation()
        tls_files = self._tls() if self.tls else None
        workdir = Path(tempfile.mkdtemp(prefix="idgate-slapd-", dir=self._base_dir))
        try:
            self._write_database(self._installation, workdir, tls_files)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self._workdir = workdir

    def _write_database(
        self, installation: Installation, workdir: Path, tls_files: TlsFiles | None
    ) -> None:
        (workdir / "config").mkdir()
        (workdir / "data").mkdir()
        config_path = workdir / "config.ldif"
        config_path.write_text(
            config_ldif(
                installation,
                workdir,
                self.suffix,
                self.root_dn,
                self.policy_dn,
                tls_files,
                limits=self.limits,
                size_limit=self.size_limit,
                time_limit=self.time_limit,
            )
        )
        base_path = workdir / "base.ldif"
        base_path.write_text(seed.base_ldif(self.suffix, with_users=bool(self.users)))
        slapadd = str(installation.slapadd)
        config_dir = str(workdir / "config")
        _run([slapadd, "-n0", "-F", config_dir, "-l", str(config_path)])
        # -q: skip consistency checks of an empty database; it is a fresh load.
        _run([slapadd, "-q", "-F", config_dir, "-b", self.suffix, "-l", str(base_path)])

    def _choose_ports(self) -> None:
        self.port = _free_port()
        self.ldaps_port = _free_port(avoid=self.port) if self.tls else 0

    def _command(self) -> list[str]:
        assert self._installation is not None
        listeners = [f"ldap://127.0.0.1:{self.port}/"]
        if self.tls:
            listeners.append(f"ldaps://127.0.0.1:{self.ldaps_port}/")
        return [
            str(self._installation.slapd),
            "-d", self._debug_level,
            "-h", " ".join(listeners),
            "-F", str(self.workdir / "config"),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return answers_rootdse("127.0.0.1", self.port, "namingContexts")

    def _location(self) -> str:
        return f"port {self.port}"

    def _exit_error(self, exit_code: int) -> Exception:
        tail = self.log_tail()
        if "Address already in use" in tail:
            return _AddressInUse(f"port taken:\n{tail}")
        return super()._exit_error(exit_code)

    def _add_retcode_overlay(self, conn: ldap3.Connection) -> str:
        """Load slapo-retcode under the mdb database; returns its config DN."""
        assert self._installation is not None
        if (self._installation.module_dir / "retcode.so").exists():
            conn.modify(
                "cn=module{0},cn=config", {"olcModuleLoad": [(ldap3.MODIFY_ADD, ["retcode"])]}
            )
            check(conn, "load retcode", SlapdError)
        conn.add(
            f"olcOverlay=retcode,{MDB_DN}",
            ["olcOverlayConfig", "olcRetcodeConfig"],
            {
                "olcOverlay": "retcode",
                # Its generated error entries live under this parent; nothing real is there,
                # so no other operation is answered by the overlay (default: the suffix!).
                "olcRetcodeParent": f"cn=retcode,{self.suffix}",
            },
        )
        check(conn, "add the retcode overlay", SlapdError)
        # slapd numbers it ({2}retcode): ask rather than guess.
        conn.search(MDB_DN, "(objectClass=olcRetcodeConfig)", ldap3.LEVEL, attributes=["1.1"])
        check(conn, "find the retcode overlay", SlapdError)
        return str(conn.response[0]["dn"])

    def _seed_groups(self) -> None:
        # Over LDAP rather than slapadd: the memberof overlay only runs on live operations.
        for dn, members in self.groups.items():
            self.add_group(to_dn(dn)[0].split("=", 1)[1], members)

    def _records(self) -> list[_LogRecord]:
        # Incremental: each call parses only what the logs gained since the last one, so
        # counting stays cheap on a session-long (or benchmark-sized) log.
        with self._parse_lock:
            for run, path in enumerate(self._logs):
                if not path.exists():
                    continue
                offset = self._parsed_offsets.get(run, 0)
                with path.open("rb") as log:
                    log.seek(offset)
                    data = log.read()
                complete = data.rfind(b"\n") + 1  # a line slapd is still writing waits
                for line in data[:complete].decode(errors="replace").splitlines():
                    record = _parse(run, line)
                    if record is not None:
                        self._parsed.append(record)
                self._parsed_offsets[run] = offset + complete
            return self._parsed

    @contextlib.contextmanager
    def _connection(self, user: str, password: str) -> Iterator[ldap3.Connection]:
        server = ldap3.Server("127.0.0.1", port=self._require_port(), get_info=ldap3.NONE)
        conn = ldap3.Connection(server, user=user, password=password, receive_timeout=10)
        with bound(conn, who=user, where=self.url, error=SlapdError, reason="description"):
            yield conn


class _LogRecord(NamedTuple):
    run: int  # which start: connection numbers begin again at 1000 after a restart
    conn: str
    op: str
    kind: str  # SRCH, BIND, ..., or ACCEPT for a new connection
    rest: str


# `conn=1000 op=2 SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(uid=alice)"`
_OPERATION = re.compile(r"\bconn=(?P<conn>\d+) op=(?P<op>\d+) (?P<kind>[A-Z]+)\b(?P<rest>.*)")
# `conn=1000 fd=12 ACCEPT from IP=127.0.0.1:41234 (IP=127.0.0.1:389)`
_ACCEPT = re.compile(r"\bconn=(?P<conn>\d+) fd=\d+ ACCEPT (?P<rest>.*)")
# the rest of `conn=1000 op=0 BIND dn="uid=alice,ou=people,dc=example,dc=org" method=128`
_BIND_REQUEST = re.compile(r' dn="(?P<dn>[^"]*)" method=')


def _parse(run: int, line: str) -> _LogRecord | None:
    match = _OPERATION.search(line)
    if match is not None:
        return _LogRecord(run, match["conn"], match["op"], match["kind"], match["rest"])
    match = _ACCEPT.search(line)
    if match is not None:
        return _LogRecord(run, match["conn"], "", "ACCEPT", match["rest"])
    return None


def _run(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if completed.returncode != 0:
        raise SlapdError(f"{' '.join(command)} failed:\n{completed.stderr.strip()}")


def _free_port(avoid: int = 0) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port != avoid:
            return port
