"""The life of a throwaway server process, shared by `Slapd` and `SambaAD`.

A `ServerProcess` owns a temp directory (`workdir`) and runs its server in the foreground,
in a process group of its own, with one log per start (`<program>.<n>.log`). It waits until
the server answers (`_ready`), and makes sure no server outlives the test run: teardown
signals the whole group, an `atexit` hook closes servers nobody closed, and the child is
started through `setpriv --pdeathsig KILL` so it dies even when the run is SIGKILLed.

Subclasses say how to start (`start`, which calls `_launch` with the command) and when the
server is ready; they may change how it is asked to stop (`_ask_to_stop`) and what an early
exit means (`_exit_error`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any, ClassVar, Self

__all__ = ["ServerProcess", "close_stdin"]


class ServerProcess(ABC):
    """A server process with its directory and logs: start, stop, kill, close, `with`.

    Attributes: `workdir`, `log_path`, `running`, `pid`, `start_seconds` (launch to ready,
    last start).
    """

    program: ClassVar[str]  # names the logs and the error messages: "slapd", "samba"
    _error: ClassVar[type[Exception]]  # what every failure raises
    start_timeout: ClassVar[float]
    stop_timeout: ClassVar[float]
    poll_interval: ClassVar[float]  # between readiness probes

    def __init__(self) -> None:
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._logs: list[Path] = []
        self.start_seconds = 0.0

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise self._error("not set up yet: call start()")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """The log of the current (or last) run."""
        if not self._logs:
            raise self._error("never started")
        return self._logs[-1]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Start the server (setting it up on the first start) and wait until it is ready."""

    def stop(self, timeout: float | None = None) -> None:
        """Shut the server down cleanly (`_ask_to_stop`: SIGTERM unless the class says
        otherwise); SIGKILL if it takes longer than `timeout` (default `stop_timeout`).
        Data and address stay for the next start()."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._ask_to_stop(process)
        try:
            process.wait(self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        close_stdin(process)

    def kill(self) -> None:
        """End the server at once (SIGKILL): a crashed or unplugged server."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGKILL)
        process.wait(self.stop_timeout)
        close_stdin(process)

    def close(self) -> None:
        """Kill the server and delete its directory. The object cannot be started again."""
        self.kill()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the logs ----------------------------------------------------------------------

    def log_text(self) -> str:
        """Every run's log, oldest first."""
        return "".join(path.read_text(errors="replace") for path in self._logs if path.exists())

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the current run's log (for error messages)."""
        if not self._logs or not self._logs[-1].exists():
            return "(no log)"
        return "\n".join(self._logs[-1].read_text(errors="replace").splitlines()[-lines:])

    # -- for subclasses ----------------------------------------------------------------

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers yet (called every `poll_interval` while starting)."""

    @abstractmethod
    def _location(self) -> str:
        """Where the server listens, for the not-ready message."""

    def _ask_to_stop(self, process: subprocess.Popen[bytes]) -> None:
        _signal_group(process, signal.SIGTERM)

    def _exit_error(self, exit_code: int) -> Exception:
        """What to raise when the server exits while starting."""
        return self._error(
            f"{self.program} exited with status {exit_code}; log tail:\n{self.log_tail()}"
        )

    def _close_at_exit(self) -> None:
        """Let the atexit hook close this server if nobody does. `_launch` calls it; call
        it earlier for what must go even if no process ever ran (a network namespace)."""
        _LIVE.add(self)

    def _launch(
        self,
        command: list[str],
        *,
        log_dir: Path,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run `command` with its output in a new log under `log_dir`; wait until ready.

        Raises: `_exit_error` when it exits first; the class's error with the log tail
        when it is not ready within `start_timeout` seconds (the server is then killed).
        """
        log_path = log_dir / f"{self.program}.{len(self._logs)}.log"
        self._logs.append(log_path)
        began = time.perf_counter()
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [*_die_with_parent(), *command],
                stdin=stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: teardown signals the group, and Ctrl-C in the
                # terminal does not reach the server before our cleanup does.
                start_new_session=True,
                env=env,
            )
        self._close_at_exit()
        try:
            self._wait_ready(self._process)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.perf_counter() - began

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                raise self._exit_error(exit_code)
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise self._error(
                    f"{self.program} not ready on {self._location()} after"
                    f" {self.start_timeout:.0f} s; log tail:\n{self.log_tail()}"
                )
            time.sleep(self.poll_interval)


def close_stdin(process: subprocess.Popen[bytes]) -> None:
    """Close the pipe to the process's stdin, if it has one (a server that ends on EOF
    stops then; an open pipe would be a ResourceWarning once the process is gone)."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


# -- never leave a server behind -------------------------------------------------------

_LIVE: set[ServerProcess] = set()


def _close_all() -> None:
    # Servers a caller forgot to close (or a run that stopped half-way): kill, and
    # remove what they hold so /tmp does not fill up run after run.
    for server in list(_LIVE):
        server.close()


atexit.register(_close_all)


def _die_with_parent() -> list[str]:
    """A command prefix that makes Linux SIGKILL the server when the thread that started it
    ends, so even a SIGKILLed test run (no atexit) leaves no server behind.

    util-linux `setpriv` sets the death signal and execs the server (no preexec_fn, which is
    unsafe with threads). Only from the main thread: started from a worker thread, the
    server would die when that thread ends. Empty where setpriv is missing.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]
