"""A real gateway with its HTTP front and an administrator: what `idgate sync ...` talks to.

`AdminGateway` is `tests/ldapproxy/gateway_process.GatewayProcess` with both fronts served
(`idgate serve --config F`, no `--only`), the HTTP front on a loopback port it chooses, the
daily scheduler off (no 03:00 surprise in a test), and `[[admins]]` entries whose tokens it
knows in clear (the config holds their argon2 hashes). It is ready when it has written its
ready file, after both fronts listen.

`idgate_cli(...)` runs the `idgate` entry point as an operator would, with the URL and the
token in the environment.

Nothing here imports pytest.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.ldapproxy.gateway_process import (
    IDGATE,
    GatewayProcess,
    clean_environment,
    hashed,
    migrated_store,
)

SUPER_TOKEN = "cli-e2e-super-admin-token-0123456789"
HELP_DESK_TOKEN = "cli-e2e-help-desk-token-0123456789"


class AdminGateway(GatewayProcess):
    """`idgate serve --config F` with the admin API reachable at `http_url`."""

    def __init__(
        self,
        sources: Sequence[Mapping[str, Any]],
        *,
        admins: Sequence[tuple[str, str, str]] = (
            ("ops", "super_admin", SUPER_TOKEN),
            ("desk", "help_desk", HELP_DESK_TOKEN),
        ),
        sync: Mapping[str, Any] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        """
        Parameters:
            sources: `[[sources]]` tables (tests/gateway/realgw.slapd_source).
            admins: (name, role, token) of each `[[admins]]` entry.
            sync: more keys of `[sync]`.
        """
        super().__init__(sources, sync={"scheduler": False, **(sync or {})}, base_dir=base_dir)
        self.admins = list(admins)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        if self.running:
            return
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="idgate-admin-", dir=self._base_dir))
            self._close_at_exit()
            self._rewrite()
            self._prepare_store()
        command = [
            str(IDGATE), "serve", "--config", str(self.config_path),
            "--log-format", "json", "--log-level", self.log_level,
        ]  # fmt: skip
        self._serve(command, self._environment())

    def _prepare_store(self) -> None:
        """The store at the head revision before the first start (subclasses on other stores
        say how)."""
        migrated_store(self.store_path)

    def document(self) -> dict[str, Any]:
        document = super().document()
        document["http"] = {"listen": f"127.0.0.1:{self.http_port}"}
        document["admins"] = [
            {"name": name, "role": role, "token_hash": hashed(token)}
            for name, role, token in self.admins
        ]
        return document

    def _location(self) -> str:
        return f"ports {self.port} (LDAP), {self.http_port} (HTTP)"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AdminGateway {self.http_url if self.http_port else 'not started'} {state}>"


def idgate_cli(
    url: str, *args: str, token: str | None = SUPER_TOKEN, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`idgate ARGS` as a subprocess, with $IDGATE_URL and $IDGATE_ADMIN_TOKEN set.

    Output is a pipe, not a terminal: no animation, the way scripts and CI see it."""
    extra = {"IDGATE_URL": url, "COLUMNS": "160"}
    if token is not None:
        extra["IDGATE_ADMIN_TOKEN"] = token
    env = clean_environment(**extra)
    if token is None:
        env.pop("IDGATE_ADMIN_TOKEN", None)
    return subprocess.run(
        [str(IDGATE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
