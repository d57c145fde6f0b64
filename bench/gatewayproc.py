"""The gateway under benchmark: `idgate serve --only ldap` as a subprocess.

A temp dir holds its TOML configuration, its SQLite store and its log; `idgate db upgrade`
makes the schema, then `idgate serve` runs in the foreground, in a process group of its own
(`tests.servers.process.ServerProcess`: log per start, teardown that never leaves it behind).
It is ready when its LDAP port accepts connections. `shut_down()` sends SIGTERM and says
whether it exited gracefully.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backldap import free_port
from tests.servers.ldap_client import accepts
from tests.servers.process import ServerProcess
from tests.servers.slapd import Slapd

IDGATE = Path(sys.executable).parent / "idgate"


class GatewayError(RuntimeError):
    """The gateway could not be set up or started."""


class Gateway(ServerProcess):
    """`idgate serve --only ldap` as a subprocess: a SQLite store and its configuration in
    a temp dir, one `ldap` source on `upstream`, the LDAP front on a free port.

    `start()` writes the configuration, runs `idgate db upgrade` and starts the server;
    `shut_down()` sends SIGTERM and says how it ended.
    """

    program = "idgate"
    _error = GatewayError
    start_timeout = 60.0
    stop_timeout = 10.0
    poll_interval = 0.05

    def __init__(self, upstream: Slapd, jit_interval_seconds: int) -> None:
        super().__init__()
        self._upstream = upstream
        self._jit_interval_seconds = jit_interval_seconds
        self.port = 0

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "idgate.toml"

    def start(self) -> None:
        """Raises: GatewayError saying why (the command's output, or the log tail)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-bench-gateway-"))
            self._close_at_exit()
            self.port = free_port()
            config = gateway_config(
                self._upstream, self.workdir, self.port, self._jit_interval_seconds
            )
            self.config_path.write_text(to_toml(config))
            _idgate("db", "upgrade", "--config", str(self.config_path))
        command = [str(IDGATE), "serve", "--config", str(self.config_path)]
        command += ["--only", "ldap", "--log-level", "warning"]
        self._launch(command, log_dir=self.workdir)

    def shut_down(self) -> str:
        """SIGTERM, then wait up to `stop_timeout`; SIGKILL past it. Returns how it ended."""
        process = self._process
        if process is None:
            return "never started"
        if process.poll() is not None:
            return f"had already exited, status {process.returncode}"
        began = time.perf_counter()
        self._ask_to_stop(process)
        try:
            status = process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return f"did NOT exit within {self.stop_timeout:g} s of SIGTERM: killed"
        took = time.perf_counter() - began
        how = "gracefully" if status == 0 else "with an ERROR status"
        ended = f"exited {how} (status {status}) {took:.1f} s after SIGTERM"
        problems = [
            line
            for line in self.log_text().splitlines()
            if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
        ]
        if problems:
            ended += f"; its log has {len(problems)} error lines, the first: {problems[0]}"
        return ended

    def _ready(self) -> bool:
        return accepts("127.0.0.1", self.port)

    def _location(self) -> str:
        return f"port {self.port}"

    def _exit_error(self, exit_code: int) -> Exception:
        tail = self.log_tail(10)
        if "No such option" in tail and "--only" in tail:
            return GatewayError(
                "this idgate has no `serve --only ldap` yet (the LDAP front has not landed):"
                f" `idgate serve` exited with status {exit_code}:\n{tail}"
            )
        return GatewayError(f"`idgate serve` exited with status {exit_code}; log tail:\n{tail}")


def gateway_config(
    upstream: Slapd, workdir: Path, port: int, jit_interval_seconds: int
) -> dict[str, Any]:
    """The gateway's configuration (a TOML document as a dict): SQLite in `workdir`, the
    LDAP front on `port`, one `ldap` source on `upstream`, as in bench/auth.py."""
    return {
        "store": {"url": f"sqlite:///{workdir}/idgate.db"},
        # Not served with --only ldap; port 0 so that it can never clash with anything.
        "http": {"listen": "127.0.0.1:0"},
        "ldap": {"listen": f"127.0.0.1:{port}", "default_sources": ["bench"]},
        "sync": {"jit_interval_seconds": jit_interval_seconds},
        "sources": [
            {
                "id": "bench",
                "kind": "ldap",
                "urls": [upstream.url],
                "bind_dn": upstream.service_dn,
                # The throwaway slapd's service account, in a file in a temp dir.
                "bind_password": upstream.service_password,
                "roots": [upstream.people_dn],
            }
        ],
    }


def to_toml(document: dict[str, Any]) -> str:
    """TOML for a document of tables, arrays of tables and str/int/bool/list values.

    Strings are written as JSON strings, which are valid TOML basic strings (the escapes
    JSON emits are a subset of TOML's)."""
    lines: list[str] = []

    def values(table: dict[str, Any]) -> None:
        for key, value in table.items():
            if not isinstance(value, dict) and not _is_table_array(value):
                lines.append(f"{key} = {json.dumps(value)}")

    for name, table in document.items():
        if _is_table_array(table):
            for item in table:
                lines += ["", f"[[{name}]]"]
                values(item)
        else:
            lines += ["", f"[{name}]"]
            values(table)
    return "\n".join(lines).lstrip() + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _idgate(*args: str) -> None:
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(IDGATE), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip()
        raise GatewayError(f"`idgate {' '.join(args)}` failed ({completed.returncode}):\n{output}")
