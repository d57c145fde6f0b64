"""A throwaway FreeRADIUS 3 whose users live in an LDAP directory (rlm_ldap).

It stands for the VPN concentrators and Wi-Fi controllers that check passwords against
idgate's LDAP front: each `FreeRadius` writes a small self-contained raddb into a temp dir
(one client, 127.0.0.1, with a generated secret; the `ldap` and `pap` modules; one virtual
server on a free loopback UDP port) and runs `freeradius -f` in its own process group
(`ServerProcess`). Authorize looks the user up with the service account, authenticate binds
as the user: the two LDAP operations idgate's front must answer. `authenticate()` sends one
PAP Access-Request with `radclient`. Nothing here imports pytest.

What the directory sees (measured against slapd): rlm_ldap keeps one pooled connection and
rebinds it: service-account bind, search, user bind; the next request binds as the service
account again on the same connection. An unknown user is searched twice (authorize, then
authenticate), with no user bind. A directory that is down, refuses the service account or
fails TLS verification gives Access-Reject, never silence; after a failed connect rlm_ldap
waits `retry_delay` (1 s here) before trying again.

    with FreeRadius(slapd.url, slapd.service_dn, slapd.service_password,
                    "ou=people,dc=example,dc=org") as radius:
        radius.authenticate("alice", "alice-secret").accepted     # True

Debian: `apt-get install freeradius freeradius-ldap freeradius-utils`.
"""

from __future__ import annotations

import enum
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import ServerProcess

__all__ = [
    "AD_USER_FILTER",
    "UID_USER_FILTER",
    "FreeRadius",
    "FreeRadiusError",
    "FreeRadiusNotInstalled",
    "Installation",
    "RadiusAnswer",
    "RadiusOutcome",
    "find_installation",
]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# rlm_ldap escapes what the %{...} expansions insert into the filter (RFC 4515).
_NAME = "%{%{Stripped-User-Name}:-%{User-Name}}"
UID_USER_FILTER = f"(uid={_NAME})"
AD_USER_FILTER = f"(sAMAccountName={_NAME})"

_READY = "Ready to process requests"
_SECRET_FILE = "radclient.secret"  # the shared secret, for radclient -S


class FreeRadiusError(RuntimeError):
    """FreeRADIUS could not be configured or started, or radclient could not be run."""


class FreeRadiusNotInstalled(FreeRadiusError):
    """The server, its LDAP module or radclient is missing."""


class _AddressInUse(FreeRadiusError):
    """The UDP port was taken between choosing it and FreeRADIUS binding it."""


@dataclass(frozen=True)
class Installation:
    radiusd: Path  # `freeradius` on Debian, `radiusd` elsewhere
    radclient: Path
    libdir: Path  # the rlm_*.so modules


def find_installation() -> Installation:
    """Locate the server, rlm_ldap and radclient.

    Raises: FreeRadiusNotInstalled naming what is missing.
    """
    radiusd = _find_binary("freeradius") or _find_binary("radiusd")
    radclient = _find_binary("radclient")
    libdir = next(
        (
            Path(d)
            for d in ("/usr/lib/freeradius", "/usr/lib64/freeradius", "/usr/local/lib/freeradius")
            if Path(d, "rlm_ldap.so").exists()
        ),
        None,
    )
    missing = [
        name
        for name, found in (("freeradius", radiusd), ("rlm_ldap", libdir), ("radclient", radclient))
        if found is None
    ]
    if missing or radiusd is None or radclient is None or libdir is None:
        raise FreeRadiusNotInstalled(
            f"FreeRADIUS not installed, missing: {', '.join(missing)}"
            " (apt-get install freeradius freeradius-ldap freeradius-utils)"
        )
    return Installation(radiusd, radclient, libdir)


class RadiusOutcome(enum.Enum):
    ACCEPT = "Access-Accept"
    REJECT = "Access-Reject"
    NO_ANSWER = "no answer"


@dataclass(frozen=True)
class RadiusAnswer:
    """What one Access-Request got. `output` is radclient's (stdout and stderr), for
    diagnostics; it never holds the password."""

    outcome: RadiusOutcome
    output: str
    seconds: float

    @property
    def accepted(self) -> bool:
        return self.outcome is RadiusOutcome.ACCEPT


class FreeRadius(ServerProcess):
    """One throwaway FreeRADIUS authenticating against `ldap_url`: configure with the
    constructor, then `start()` (or `with`). Lifecycle, logs and teardown as in
    `ServerProcess`; `stop()`/`start()` keeps the port and secret.

    Attributes after start: `port`, `secret`, `start_seconds`, `workdir`, `log_path`.
    """

    program = "freeradius"
    _error = FreeRadiusError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.01

    def __init__(
        self,
        ldap_url: str,
        identity: str,
        password: str,
        base_dn: str,
        *,
        user_filter: str = UID_USER_FILTER,
        start_tls: bool = False,
        ca_file: Path | None = None,
        debug: bool = False,
        base_dir: Path | None = None,
    ) -> None:
        """
        Parameters:
            ldap_url: the directory, `ldap://host:port` or `ldaps://host:port`.
            identity, password: the service account rlm_ldap searches as.
            base_dn: where users are searched (subtree).
            user_filter: the search filter, with FreeRADIUS expansions: UID_USER_FILTER
                (default) or AD_USER_FILTER, or your own.
            start_tls: StartTLS on an ldap:// URL.
            ca_file: PEM of the CA that signed the directory's certificate; with it the
                certificate must verify (`require_cert = demand`).
            debug: run with `-X`: every request is logged in full, **passwords included**;
                only for hunting a problem by hand.
            base_dir: where the temp directory is made (default: the system temp dir).
        """
        super().__init__()
        self.ldap_url = ldap_url
        self.identity = identity
        self._password = password
        self.base_dn = base_dn
        self.user_filter = user_filter
        self.start_tls = start_tls
        self.ca_file = ca_file
        self.debug = debug
        self._base_dir = base_dir
        self._installation: Installation | None = None
        self.secret = secrets.token_hex(16)
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Write the raddb (first start), start FreeRADIUS and wait for "Ready to process
        requests". The directory need not be up: connections are opened per request.

        Raises: FreeRadiusNotInstalled; FreeRadiusError with the log tail when the server
        exits or is not ready within START_TIMEOUT seconds.
        """
        if self.running:
            return
        first = self._workdir is None
        if first:
            self._installation = find_installation()
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-freeradius-", dir=self._base_dir))
        attempts = 5 if first else 1
        for attempt in range(attempts):
            if first:
                self.port = _free_udp_port()
                self._write_raddb()
            try:
                self._launch(self._command(), log_dir=self.workdir / "log")
                break
            except _AddressInUse:
                # FreeRADIUS cannot listen on port 0 and say where: its probed UDP port may
                # be taken before it binds. Said, then tried again.
                if attempt == attempts - 1:
                    raise
                print(f"{self!r}: port {self.port} was taken meanwhile; another", file=sys.stderr)

    def __repr__(self) -> str:
        where = f"udp/127.0.0.1:{self.port}" if self.port else "not started"
        state = "running" if self.running else "stopped"
        return f"<FreeRadius {self.ldap_url} {where} {state}>"

    # -- the client --------------------------------------------------------------------

    def authenticate(self, user: str, password: str, *, timeout: int = 3) -> RadiusAnswer:
        """Send one PAP Access-Request for `user` (no retry) and say what came back.

        timeout: whole seconds to wait for the answer (radclient rounds fractions oddly:
            0.3 waits a second, 0.1 not at all).
        Raises: FreeRadiusError when radclient cannot be run, or for a line break in `user`
        or `password` (never with the password in the message).
        """
        if timeout < 1:
            raise FreeRadiusError(f"timeout must be at least 1 s, not {timeout}")
        installation = self._installation or find_installation()
        request = f"User-Name = {_quote(user)}\nUser-Password = {_quote(password)}\n"
        command = [
            str(installation.radclient),
            "-r", "1",  # one try: a lost answer is an answer here
            "-t", str(timeout),
            "-d", str(self.workdir),  # not /etc/freeradius: the built-in dictionary is enough
            "-S", str(self.workdir / _SECRET_FILE),  # argv is visible to every user in `ps`
            f"127.0.0.1:{self._require_port()}",
            "auth",
        ]  # fmt: skip
        began = time.perf_counter()
        try:
            # The password goes through stdin, not argv, for the same reason.
            completed = subprocess.run(
                command,
                input=request,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout + 5,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FreeRadiusError(f"radclient for {user!r} failed: {exc}") from exc
        seconds = time.perf_counter() - began
        # Without -x radclient prints no attributes: the output never holds the password.
        output = completed.stdout + completed.stderr
        return RadiusAnswer(_outcome(output), output, seconds)

    # -- internals ---------------------------------------------------------------------

    def _require_port(self) -> int:
        if not self.port:
            raise FreeRadiusError("not started yet: call start()")
        return self.port

    def _command(self) -> list[str]:
        assert self._installation is not None
        level = ["-X"] if self.debug else []
        return [
            str(self._installation.radiusd),
            "-f",  # foreground: ServerProcess owns the process
            *level,
            "-l", "stdout",  # into ServerProcess's log
            "-d", str(self.workdir),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _READY in self.log_tail(5)

    def _location(self) -> str:
        return f"udp/127.0.0.1:{self.port}"

    def _exit_error(self, exit_code: int) -> Exception:
        tail = self.log_tail()
        if "Address already in use" in tail:
            return _AddressInUse(f"port taken:\n{tail}")
        return super()._exit_error(exit_code)

    def _write_raddb(self) -> None:
        assert self._installation is not None
        raddb = self.workdir
        for sub in ("log", "run", "mods-enabled", "sites-enabled"):
            (raddb / sub).mkdir(exist_ok=True)
        files = {
            "radiusd.conf": _radiusd_conf(raddb, self._installation.libdir),
            "clients.conf": _clients_conf(self.secret),
            "mods-enabled/ldap": self._ldap_module(),
            "mods-enabled/pap": "pap {\n}\n",
            "sites-enabled/default": _site(self.port),
            _SECRET_FILE: self.secret + "\n",
        }
        for name, text in files.items():
            path = raddb / name
            path.write_text(text)
            # FreeRADIUS refuses configuration others could change; ours also holds secrets.
            path.chmod(0o600)

    def _ldap_module(self) -> str:
        tls = ""
        if self.start_tls or self.ca_file is not None:
            lines = [f"start_tls = {'yes' if self.start_tls else 'no'}"]
            if self.ca_file is not None:
                lines += [f"ca_file = {_quote(str(self.ca_file))}", "require_cert = 'demand'"]
            tls = "\ttls {\n" + "".join(f"\t\t{line}\n" for line in lines) + "\t}\n"
        return f"""\
ldap {{
	server = {_quote(self.ldap_url)}
	identity = {_quote(self.identity)}
	password = {_quote(self._password)}
	base_dn = {_quote(self.base_dn)}
	user_dn = "LDAP-UserDn"
	user {{
		base_dn = "${{..base_dn}}"
		filter = {_quote(self.user_filter, expand=True)}
		scope = 'sub'
	}}
	options {{
		chase_referrals = no
		rebind = no
		res_timeout = 5
		srv_timelimit = 3
		net_timeout = 2
		idle = 60
		probes = 3
		interval = 3
		ldap_debug = 0x0000
	}}
{tls}\
	# start = 0: the server starts without the directory (idgate may come up later);
	# retry_delay 1 instead of 30: a directory that was down is tried again at once.
	pool {{
		start = 0
		min = 0
		max = 4
		spare = 1
		uses = 0
		retry_delay = 1
		lifetime = 0
		idle_timeout = 60
	}}
}}
"""


def _radiusd_conf(raddb: Path, libdir: Path) -> str:
    # Every path inside the temp dir (nothing under /var or /etc), no user/group: the server
    # runs as whoever starts it.
    return f"""\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {raddb}
sbindir = /usr/sbin
logdir = {raddb}/log
raddbdir = {raddb}
radacctdir = {raddb}/log
name = radiusd
confdir = {raddb}
modconfdir = {raddb}/mods-config
certdir = {raddb}
cadir = {raddb}
run_dir = {raddb}/run
db_dir = {raddb}
libdir = {libdir}
pidfile = {raddb}/run/radiusd.pid
max_request_time = 10
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
	colourise = no
	stripped_names = no
	# "Login OK" / "Login incorrect" lines, without the password (auth_badpass = no).
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	# 0, not 1: an Access-Reject is not held back a second.
	reject_delay = 0
	status_server = yes
}}
proxy_requests = no
$INCLUDE clients.conf
thread pool {{
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 4
	max_requests_per_server = 0
	auto_limit_acct = no
}}
modules {{
	$INCLUDE mods-enabled/
}}
instantiate {{
}}
$INCLUDE sites-enabled/
"""


def _clients_conf(secret: str) -> str:
    return f"""\
client localhost {{
	ipaddr = 127.0.0.1
	proto = udp
	secret = {_quote(secret)}
	require_message_authenticator = no
	nas_type = other
}}
"""


def _site(port: int) -> str:
    return f"""\
server default {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {port}
	}}
	authorize {{
		# Finds the user (a search as the service account), sets LDAP-UserDn.
		ldap
		if (&User-Password) {{
			update control {{
				&Auth-Type := LDAP
			}}
		}}
	}}
	authenticate {{
		# Binds as the user with the password of the request.
		Auth-Type LDAP {{
			ldap
		}}
		Auth-Type PAP {{
			pap
		}}
	}}
}}
"""


def _quote(value: str, *, expand: bool = False) -> str:
    """A FreeRADIUS string (configuration or radclient input): single-quoted (literal) or
    double-quoted (`%{...}` expanded per request).

    Raises: FreeRadiusError for a line break or NUL, which no quoting carries (the message
    never shows the value: it may be a password).
    """
    if any(char in value for char in "\r\n\0"):
        raise FreeRadiusError("a value with a line break or NUL cannot be passed to FreeRADIUS")
    mark = '"' if expand else "'"
    return mark + value.replace("\\", "\\\\").replace(mark, "\\" + mark) + mark


_ANSWER = re.compile(r"Received (Access-Accept|Access-Reject)\b")


def _outcome(output: str) -> RadiusOutcome:
    match = _ANSWER.search(output)
    return RadiusOutcome(match[1]) if match else RadiusOutcome.NO_ANSWER


def _find_binary(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    # /usr/sbin is not on PATH for every user or CI runner.
    return next((Path(d, name) for d in ("/usr/sbin", "/sbin") if Path(d, name).exists()), None)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
