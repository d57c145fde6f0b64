"""OpenLDAP's own LDAP proxy (`back-ldap`) in front of a throwaway slapd: the bar the
gateway's LDAP front is measured against.

A second slapd whose only database is `olcDatabase=ldap` with the upstream's suffix and
`olcDbURI` pointing at it. It keeps no data and does no sync: a simple bind under the suffix
is forwarded upstream and the upstream's answer is passed back. Built like
`tests.servers.slapd.Slapd` (cn=config with `slapadd -n0`, foreground, own process group),
without data, seed or overlays.

back-ldap gives every explicit bind a private upstream connection (slapd-ldap(5)): a client
that re-binds one connection as user after user makes the proxy open a new upstream
connection per bind (connect, bind, and unbind the previous one). By default it also keeps
an entry per identity for that client connection until the client disconnects (OpenLDAP
ITS#4546), so its cost per bind grows over a long run (0.25 -> 0.50 ms of CPU within 10 s
here); `olcDbSingleConn: TRUE`, the default of this class, drops those on every re-bind.

    with BackLdap(upstream.url, upstream.suffix) as proxy:
        proxy.url                           # ldap://127.0.0.1:<port>
"""

import socket
import subprocess
import tempfile
from pathlib import Path

from tests.servers import seed
from tests.servers.ldap_client import answers_rootdse
from tests.servers.process import ServerProcess
from tests.servers.slapd_config import Installation, SlapdError, find_installation

# What the proxy must parse in the DNs it routes (uid, ou, dc); no other schema is needed.
_SCHEMAS = ("core", "cosine", "inetorgperson")


class BackLdap(ServerProcess):
    """A slapd running only `back-ldap` for `suffix`, forwarding to `upstream_url`.

    single_conn: `olcDbSingleConn`, one cached upstream connection per client connection.
    debug_level: slapd `-d` level. The default `0` logs nothing: the proxy at its fastest,
    since it is the bar to beat (`stats` costs it a log line per operation).
    """

    program = "slapd-back-ldap"
    _error = SlapdError
    start_timeout = 10.0
    stop_timeout = 5.0
    poll_interval = 0.005

    def __init__(
        self,
        upstream_url: str,
        suffix: str,
        *,
        single_conn: bool = True,
        debug_level: str = "0",
    ) -> None:
        super().__init__()
        self.upstream_url = upstream_url
        self.suffix = suffix
        self.single_conn = single_conn
        self.port = 0
        self._debug_level = debug_level
        self._installation: Installation | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise SlapdError("not started yet: call start()")
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Build the configuration (first start), start slapd and wait until it answers a
        RootDSE search.

        Raises: SlapdNotInstalled (no back_ldap module among them); SlapdError with the
        log tail when slapd does not come up.
        """
        if self.running:
            return
        if self._workdir is None:
            self._installation = find_installation()
            if not (self._installation.module_dir / "back_ldap.so").exists():
                raise SlapdError(f"no back_ldap.so in {self._installation.module_dir}")
            workdir = Path(tempfile.mkdtemp(prefix="idgate-backldap-"))
            self._workdir = workdir
            (workdir / "config").mkdir()
            ldif = workdir / "config.ldif"
            ldif.write_text(
                config_ldif(
                    self._installation, workdir, self.suffix, self.upstream_url, self.single_conn
                )
            )
            completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [
                    str(self._installation.slapadd),
                    "-n0",
                    "-F",
                    str(workdir / "config"),
                    "-l",
                    str(ldif),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            if completed.returncode != 0:
                raise SlapdError(f"slapadd -n0 (back-ldap) failed:\n{completed.stderr.strip()}")
            self.port = free_port()
        assert self._installation is not None
        command = [
            str(self._installation.slapd),
            "-d", self._debug_level,
            "-h", f"ldap://127.0.0.1:{self.port}/",
            "-F", str(self.workdir / "config"),
        ]  # fmt: skip
        self._launch(command, log_dir=self.workdir)

    def _ready(self) -> bool:
        return answers_rootdse("127.0.0.1", self.port, "namingContexts")

    def _location(self) -> str:
        return f"port {self.port}"


def config_ldif(
    installation: Installation, workdir: Path, suffix: str, upstream_url: str, single_conn: bool
) -> str:
    """The LDIF for `slapadd -n0`: module back_ldap, the schemas, and one `ldap` database."""
    global_entry = [
        ("dn", "cn=config"),
        ("objectClass", "olcGlobal"),
        ("cn", "config"),
        ("olcPidFile", str(workdir / "slapd.pid")),
        ("olcArgsFile", str(workdir / "slapd.args")),
    ]
    modules = [
        ("dn", "cn=module{0},cn=config"),
        ("objectClass", "olcModuleList"),
        ("cn", "module{0}"),
        ("olcModulePath", str(installation.module_dir)),
        ("olcModuleLoad", "back_ldap"),
    ]
    schema = [("dn", "cn=schema,cn=config"), ("objectClass", "olcSchemaConfig"), ("cn", "schema")]
    config_db = [
        ("dn", "olcDatabase={0}config,cn=config"),
        ("objectClass", "olcDatabaseConfig"),
        ("olcDatabase", "{0}config"),
    ]
    proxy = [
        ("dn", "olcDatabase={1}ldap,cn=config"),
        ("objectClass", "olcDatabaseConfig"),
        ("objectClass", "olcLDAPConfig"),
        ("olcDatabase", "{1}ldap"),
        ("olcSuffix", suffix),
        ("olcDbURI", upstream_url),
        ("olcDbSingleConn", "TRUE" if single_conn else "FALSE"),
    ]
    parts = [seed.render_entry(global_entry), seed.render_entry(modules)]
    parts.append(seed.render_entry(schema))
    for name in _SCHEMAS:
        parts.append((installation.schema_dir / f"{name}.ldif").read_text().strip() + "\n")
    parts += [seed.render_entry(entry) for entry in (config_db, proxy)]
    return "\n".join(parts)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
