"""The gateway as its users meet it: `idgate serve --only ldap` as a subprocess.

`GatewayProcess` writes a TOML configuration into a temp dir (SQLite store beside it, the LDAP
front on a loopback port the gateway chooses, optionally LDAPS and StartTLS with a throwaway
CA, one service account `cn=radius,ou=services,dc=idgate`, the sources it is given), puts a
migrated store there (`migrated_store`: a copy of one schema per test process, what
`idgate db upgrade` writes; tests/gateway/runtime/test_cli.py runs that command itself) and then
`idgate serve --config F --only ldap --log-format json` in a process group of its own
(`ServerProcess`: one log per start in the temp dir, teardown that never leaves it behind). It
is ready when it has written its ready file (`--ready-file`), which gives the ports it bound;
`shut_down()` sends SIGTERM and insists on a clean exit within a few seconds.

`DemoProcess` runs `idgate serve` with no configuration at all (the built-in demo), in a temp
working directory, with its ports set by `IDGATE_LDAP__LISTEN` / `IDGATE_HTTP__LISTEN` (0).

`refusing_port()` holds a port that refuses connections (bound, never listening), for tests
of a peer that is not there: nobody else can take it while the test runs.

Source tables are built like tests/gateway/realgw.py builds them. Nothing here imports pytest.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from gateway.auth.secrets import hash_secret
from store.db import make_engine
from store.migrate import upgrade
from tests.servers.process import ServerProcess
from tests.servers.tls import TlsFiles

IDGATE = Path(sys.executable).parent / "idgate"
SERVICE_DN = "cn=radius,ou=services,dc=idgate"
SERVICE_PASSWORD = "radius-front-secret"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class GatewayError(RuntimeError):
    """The gateway could not be configured, started, or did not shut down cleanly."""


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections for as long as the block runs.

    It is bound and never listened on, so a connection gets RST at once (connection
    refused), and no other process can bind it meanwhile: unlike a probed-then-released
    port, it cannot turn into somebody's live server in the middle of the test.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without `IDGATE_<SECTION>__<KEY>` overrides (a developer's
    shell must not reconfigure the gateway under test), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("IDGATE_") and "__" in k)}
    env.update(extra)
    return env


@cache
def hashed(secret: str) -> str:
    """`hash_secret(secret)`, once per test process per secret (argon2 costs ~0.25 s)."""
    return hash_secret(secret)


_schema_lock = threading.Lock()
_schema: Path | None = None


def migrated_store(path: Path) -> None:
    """Write a SQLite store at the head revision to `path`.

    The same `store.migrate.upgrade` that `idgate db upgrade` runs, done once per test process
    into a template and copied: each gateway start would otherwise pay a Python start and a
    migration run (~1.7 s of CPU).
    """
    global _schema
    with _schema_lock:
        if _schema is None:
            directory = Path(tempfile.mkdtemp(prefix="idgate-schema-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            template = directory / "idgate.db"
            engine = make_engine(f"sqlite:///{template}")
            try:
                upgrade(engine)
                # Fold the WAL back into the main file so a plain copy carries the schema.
                with engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                engine.dispose()
            _schema = template
        shutil.copyfile(_schema, path)


class _IdgateServer(ServerProcess):
    """What every gateway of the tests shares: ports the gateway chooses itself, readiness
    from its ready file, and a SIGTERM shutdown that must end the process cleanly.

    The first start listens on port 0 everywhere (`idgate serve --ready-file`: the OS picks
    free ports and the gateway writes which, once every front listens), so no port is ever
    probed here and handed over. A later start (after a stop or a kill) asks for the same
    ports again, as a restarted server would; if one was taken meanwhile, the start is
    tried once more on new ports, and says so on stderr.
    """

    program = "idgate"
    _error = GatewayError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.02

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.ldaps_port = 0
        self.http_port = 0

    @property
    def ready_path(self) -> Path:
        return self.workdir / "ready.json"

    def _serve(self, command: list[str], env: dict[str, str]) -> None:
        """Launch `command` (an `idgate serve ...`) with the ready file, and wait for it."""
        self.ready_path.unlink(missing_ok=True)  # a killed gateway leaves its last one
        first = not (self.port or self.http_port)
        try:
            self._launch([*command, "--ready-file", str(self.ready_path)],
                         log_dir=self.workdir, env=env)  # fmt: skip
        except GatewayError as exc:
            if first or "Address already in use" not in str(exc):
                raise
            print(
                f"{self!r}: a port of the last start was taken meanwhile; starting on new ports",
                file=sys.stderr,
            )
            self.port = self.ldaps_port = self.http_port = 0
            self._rewrite()
            self._serve(command, self._environment())

    def _environment(self) -> dict[str, str]:
        return clean_environment()

    def _rewrite(self) -> None:
        """Write the configuration again with the current ports (subclasses that have one)."""

    def _ready(self) -> bool:
        try:
            ready = json.loads(self.ready_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        for key, attribute in (("ldap", "port"), ("ldaps", "ldaps_port"), ("http", "http_port")):
            if ready.get(key):
                setattr(self, attribute, int(str(ready[key]).rsplit(":", 1)[1]))
        if self.ldaps_port or self.port or self.http_port:
            self._rewrite()  # a restart asks for the same ports
        return True

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def shut_down(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM to the process group; the seconds until it exited.

        Raises: GatewayError when it is still running after `timeout` (it is then killed)
        or exits with a status other than 0; the message carries the log tail.
        """
        process = self._process
        if process is None or process.poll() is not None:
            status = None if process is None else process.returncode
            raise GatewayError(f"not running at shutdown (status {status}):\n{self.log_tail()}")
        began = time.monotonic()
        self._ask_to_stop(process)
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise GatewayError(
                f"still running {timeout:g} s after SIGTERM (killed); log tail:\n{self.log_tail()}"
            ) from None
        took = time.monotonic() - began
        if status != 0:
            raise GatewayError(f"exited with status {status} after SIGTERM:\n{self.log_tail()}")
        return took

    def _location(self) -> str:
        return f"port {self.port}"

    def _exit_error(self, exit_code: int) -> Exception:
        return GatewayError(
            f"`idgate serve` exited with status {exit_code}; log tail:\n{self.log_tail()}"
        )


class GatewayProcess(_IdgateServer):
    """`idgate serve --only ldap` with its own configuration and store (SQLite by default).

    Attributes after start: `url`, `port`, `ldaps_url`/`ldaps_port` (with `ldaps=True`),
    `config_path`, `store_path`, `workdir`, `log_path`, `pid`.
    """

    def __init__(
        self,
        sources: Sequence[Mapping[str, Any]],
        *,
        jit_interval_seconds: int = 0,
        tls: TlsFiles | None = None,
        ldaps: bool = False,
        sync: Mapping[str, Any] | None = None,
        ldap: Mapping[str, Any] | None = None,
        log_level: str = "info",
        base_dir: Path | None = None,
        store_url: str | None = None,
    ) -> None:
        """
        Parameters:
            sources: `[[sources]]` tables (realgw.slapd_source / samba_source).
            store_url: `[store] url`, migrated at the first start; None for SQLite in the
                gateway's temp dir.
            jit_interval_seconds: `[sync] jit_interval_seconds` (0: every bind reads).
            tls: certificate and key of the front (StartTLS); `ldaps` also opens LDAPS.
            sync, ldap: more keys of `[sync]` and `[ldap]`.
            log_level: `serve --log-level`.
        """
        super().__init__()
        if ldaps and tls is None:
            raise GatewayError("ldaps=True needs tls files")
        self.sources = [dict(s) for s in sources]
        self.jit_interval_seconds = jit_interval_seconds
        self.tls = tls
        self.ldaps = ldaps
        self._sync = dict(sync or {})
        self._ldap = dict(ldap or {})
        self.log_level = log_level
        self._base_dir = base_dir
        self._store_url = store_url
        self.ldaps_port = 0

    @property
    def ldaps_url(self) -> str:
        if not self.ldaps:
            raise GatewayError("made without ldaps=True")
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "idgate.toml"

    @property
    def store_path(self) -> Path:
        return self.workdir / "idgate.db"

    @property
    def store_url(self) -> str:
        return self._store_url or f"sqlite:///{self.store_path}"

    def start(self) -> None:
        """Write the configuration and the migrated store (first start), then serve.

        Raises: GatewayError with the command's output or the log tail.
        """
        if self.running:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-front-", dir=self._base_dir))
            self._close_at_exit()
            self._rewrite()
            if self._store_url is None:
                migrated_store(self.store_path)
            else:
                with _schema_lock:  # alembic's context is process-global
                    engine = make_engine(self._store_url)
                    try:
                        upgrade(engine)  # what `idgate db upgrade` runs
                    finally:
                        engine.dispose()
        command = [
            str(IDGATE), "serve", "--config", str(self.config_path), "--only", "ldap",
            "--log-format", "json", "--log-level", self.log_level,
        ]  # fmt: skip
        self._serve(command, self._environment())

    def _rewrite(self) -> None:
        self.config_path.write_text(to_toml(self.document()))

    def document(self) -> dict[str, Any]:
        """The configuration, as the TOML document's tables."""
        ldap: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}"}
        if self.tls is not None:
            ldap["tls_cert"] = str(self.tls.cert_file)
            ldap["tls_key"] = str(self.tls.key_file)
        if self.ldaps:
            ldap["ldaps_listen"] = f"127.0.0.1:{self.ldaps_port}"
        ldap.update(self._ldap)
        ldap.setdefault(
            "service_accounts", [{"dn": SERVICE_DN, "password_hash": hashed(SERVICE_PASSWORD)}]
        )
        # Shared gateways see many deliberate wrong passwords: no test may trip the limit
        # for another (the limit has tests of its own elsewhere).
        sync: dict[str, Any] = {
            "jit_interval_seconds": self.jit_interval_seconds,
            "failed_auth_limit": 1000,
            **self._sync,
        }
        return {
            "store": {"url": self.store_url},
            # Not served with --only ldap; port 0 so it can never clash with anything.
            "http": {"listen": "127.0.0.1:0"},
            "ldap": ldap,
            "sync": sync,
            "sources": self.sources,
        }

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line of every start (lines that are not JSON raise)."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<GatewayProcess {self.url if self.port else 'not started'} {state}>"


class DemoProcess(_IdgateServer):
    """`idgate serve` without --config: the built-in demo, in a temp working directory
    (it writes ./idgate.db), on free ports given through environment overrides."""

    def __init__(self, base_dir: Path | None = None) -> None:
        super().__init__()
        self._base_dir = base_dir

    def start(self) -> None:
        if self.running:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-demo-", dir=self._base_dir))
            self._close_at_exit()
        # `env -C`: the demo's store is ./idgate.db, so it runs in the temp dir (env execs
        # idgate, which keeps the pid and the process group).
        command = ["env", "-C", str(self.workdir), str(IDGATE), "serve"]
        self._serve(command, self._environment())

    def _environment(self) -> dict[str, str]:
        # The demo has no config file: its ports come as overrides (0 the first time).
        return clean_environment(
            IDGATE_LDAP__LISTEN=f"127.0.0.1:{self.port}",
            IDGATE_HTTP__LISTEN=f"127.0.0.1:{self.http_port}",
        )

    def banner(self, timeout: float = 10.0) -> str:
        """The banner the demo prints once it listens (stderr, in the log).

        Raises: GatewayError when no banner appeared within `timeout`.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if "ldapwhoami" in text and "users:" in text:
                return text
            time.sleep(0.02)
        raise GatewayError(f"no banner after {timeout:g} s; log tail:\n{self.log_tail()}")


_DEMO_COMMAND = re.compile(r"(ldapwhoami [^\n]*?)(?:\s{2,}\(.*\))?$", re.MULTILINE)


def banner_commands(banner: str) -> list[str]:
    """The `ldapwhoami ...` command lines the banner prints, without their trailing notes."""
    return [match[1].strip() for match in _DEMO_COMMAND.finditer(banner)]


# -- TOML --------------------------------------------------------------------------------------


def to_toml(document: Mapping[str, Any]) -> str:
    """TOML for nested tables, arrays of tables and str/int/float/bool/list values.

    Strings are written as JSON strings, which are valid TOML basic strings."""
    lines: list[str] = []
    _table(lines, "", document)
    return "\n".join(lines).lstrip() + "\n"


def _table(lines: list[str], prefix: str, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if not isinstance(value, Mapping) and not _is_table_array(value):
            lines.append(f"{key} = {_value(value)}")
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{prefix}{key}]"]
            _table(lines, f"{prefix}{key}.", value)
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{prefix}{key}]]"]
                _table(lines, f"{prefix}{key}.", item)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise GatewayError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _idgate(*args: str) -> None:
    completed = subprocess.run(
        [str(IDGATE), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=clean_environment(),
    )
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip()
        raise GatewayError(f"`idgate {' '.join(args)}` failed ({completed.returncode}):\n{output}")
