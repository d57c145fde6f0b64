"""A private PostgreSQL cluster for tests that stop and start the server (never the machine's).

`PgCluster` runs Debian's PostgreSQL 15 binaries (`initdb`, `pg_ctl`) on a temp directory:
trust authentication, TCP on a free 127.0.0.1 port, its unix socket inside that directory,
fsync off (a test cluster need not survive a power cut). initdb and postgres refuse to run as
root: as root they run as the `postgres` user (`runuser`), on a directory that user owns.

Nothing here imports pytest; `unavailable()` says why a cluster cannot run here (None if it can).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path(os.environ.get("IDGATE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
_OWNER = "postgres"

__all__ = ["PgCluster", "unavailable"]


def unavailable() -> str | None:
    """Why a private cluster cannot run on this machine, or None when it can."""
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (BIN / name).exists()]
    if missing:
        return (
            f"no PostgreSQL server binaries in {BIN} ({', '.join(missing)}): apt install postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_OWNER)
        except KeyError:
            return "running as root and there is no `postgres` user to run the cluster as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing"
    return None


def _probed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """One cluster: `start()`, `stop()`, `restart()`, `close()`; `url` for SQLAlchemy."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="idgate-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = _probed_port()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_OWNER)
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._options = options

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the cluster. PostgreSQL cannot listen on port 0, so its port was probed and
        released: if another process took it meanwhile, the start is tried once more on
        another port, and says so."""
        try:
            self._pg_ctl("start", "-o", self._options, "-l", str(self.log))
        except RuntimeError:
            if "Address already in use" not in self.log_text():
                raise
            taken, self.port = self.port, _probed_port()
            print(f"PgCluster: port {taken} was taken meanwhile; starting on {self.port}")
            self._options = self._options.replace(f"-p {taken} ", f"-p {self.port} ")
            self._pg_ctl("start", "-o", self._options, "-l", str(self.log))

    def stop(self) -> None:
        """A fast shutdown: every session is cut, open transactions roll back."""
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-o", self._options, "-l", str(self.log))

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", *args, check=check)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", _OWNER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False, cwd=self.dir
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log_text()[-2000:]}"
            )

    def __enter__(self) -> PgCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
