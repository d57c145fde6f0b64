"""The gateway side of the SCIM benchmark: `idgate serve --only http` with one `scim` source,
and its store loaded with the bench users beforehand, in this process.

`ScimGateway` is tests/ldapproxy/gateway_process.py's `GatewayProcess` (the TOML it writes,
`idgate db upgrade`, the process group and logs of `ServerProcess`, the SIGTERM shutdown that
must exit 0) with the HTTP front instead of the LDAP one: `[http] listen` on a free port,
`--only http`, ready when that port accepts; the store is a SQLite file in its temp dir or
any URL given (a PostgreSQL schema of its own, bench/auth.py's `fresh_store`).

`load_users` writes the N users (bench/scimusers.py) before the server starts, through the
gateway's own code (`gateway.runtime.main.build` on the same configuration, then the provisioning
service the SCIM front calls):

  service   `Provisioning.create_user` per user, one transaction each, on what the front's
            own parsing (`scim.schemas.SourceUser`, `scim.mapping.user_input`) makes of the
            POST body: exactly what a `POST /Users` does after the HTTP layer;
  batched   when the first `_PROBE` users say the whole load would take longer than
            `budget_seconds` (3 minutes), the rest go through `Provisioning.create_users`:
            each user written exactly as `create_user` writes it, `_BATCH` users per
            transaction instead of one. The rows are the same; only the commits are fewer.

On PostgreSQL the statistics are refreshed (`ANALYZE`) after the first users and at the end,
as autovacuum would do: see `_analyze`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scimusers import payload
from gateway.auth.secrets import hash_secret
from gateway.config import parse_config
from gateway.runtime.main import build
from tests.ldapproxy.gateway_process import IDGATE, GatewayProcess, _idgate

SOURCE_ID = "bench"
# Users created one POST-equivalent at a time before the pace is judged.
_PROBE = 1_000
# Users per transaction of the batched load.
_BATCH = 1_000


def scim_source(token: str) -> dict[str, Any]:
    """The gateway's one source: a generic `scim` source whose bearer token is `token`."""
    return {"id": SOURCE_ID, "kind": "scim", "token_hash": hash_secret(token)}


class ScimGateway(GatewayProcess):
    """`idgate serve --only http` on a loopback port it chooses, with one `scim` source.

    Attributes after `prepare()`: `http_port`, `base_path` (the source's SCIM root),
    `config_path`, `workdir`; after `start()`: `pid`, `log_path`.
    """

    # Stopping closes the store; a PostgreSQL pool can take a moment.
    stop_timeout = 10.0

    def __init__(self, token: str, *, store_url: str | None = None, label: str = "") -> None:
        super().__init__([scim_source(token)], log_level="warning")
        self._given_store_url = store_url
        self.label = label
        self.http_port = 0

    @property
    def store_url(self) -> str:
        return self._given_store_url or super().store_url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def base_path(self) -> str:
        return f"/scim/v2/sources/{SOURCE_ID}"

    def document(self) -> dict[str, Any]:
        document = super().document()
        document["http"] = {"listen": f"127.0.0.1:{self.http_port}"}
        return document

    def prepare(self) -> None:
        """The temp dir, the ports, the configuration and the schema (`idgate db upgrade`)."""
        if self._workdir is not None:
            return
        self._workdir = Path(tempfile.mkdtemp(prefix="idgate-bench-scim-"))
        self._close_at_exit()
        # Ports 0: the gateway chooses and writes which into its ready file.
        self._rewrite()
        _idgate("db", "upgrade", "--config", str(self.config_path))

    def start(self) -> None:
        if self.running:
            return
        self.prepare()
        command = [
            str(IDGATE), "serve", "--config", str(self.config_path), "--only", "http",
            "--log-format", "json", "--log-level", self.log_level,
        ]  # fmt: skip
        self._serve(command, self._environment())

    def _location(self) -> str:
        return f"port {self.http_port}"


# -- loading ------------------------------------------------------------------------------------


@dataclass
class Loaded:
    seconds: float
    #: How many users went each way ("service", "batched") and the service's pace.
    by_method: dict[str, int]
    service_ms_per_user: float

    def describe(self) -> str:
        ways = ", ".join(f"{n:,} {method}" for method, n in self.by_method.items() if n)
        return f"{ways} in {self.seconds:.1f} s ({self.service_ms_per_user:.2f} ms/user one by one)"


def load_users(
    gateway: ScimGateway,
    count: int,
    *,
    budget_seconds: float = 180.0,
    progress: Callable[[str], None] = print,
) -> Loaded:
    """Create users 1..count in the gateway's store (configuration written, server not yet
    started), through the gateway's own services; see the module's docstring."""
    from gateway.users.provisioning import Provisioning

    gateway.prepare()
    runtime = build(parse_config(gateway.document()))
    try:
        provisioning = getattr(runtime, "provisioning", None)
        if provisioning is None:
            provisioning = Provisioning(runtime.store, runtime.users)
        began = time.perf_counter()
        probe = min(count, _PROBE)
        for index in range(1, probe + 1):
            provisioning.create_user(SOURCE_ID, user_input(index))
        per_user = (time.perf_counter() - began) / max(probe, 1)
        _analyze(runtime.store.engine)
        by_method = {"service": probe, "batched": 0}
        rest = range(probe + 1, count + 1)
        if per_user * count <= budget_seconds:
            for index in rest:
                provisioning.create_user(SOURCE_ID, user_input(index))
            by_method["service"] = count
        elif rest:
            progress(
                f"  one by one: {per_user * 1000:.2f} ms/user, {per_user * count:.0f} s for"
                f" {count:,} (> {budget_seconds:.0f} s): the other {len(rest):,} in"
                f" transactions of {_BATCH:,}"
            )
            for first in range(rest.start, rest.stop, _BATCH):
                batch = range(first, min(first + _BATCH, rest.stop))
                provisioning.create_users(SOURCE_ID, [user_input(index) for index in batch])
            by_method["batched"] = len(rest)
        _analyze(runtime.store.engine)
        return Loaded(time.perf_counter() - began, by_method, per_user * 1000)
    finally:
        runtime.close()


def _analyze(engine: Any) -> None:
    """PostgreSQL: refresh the planner's statistics, as autovacuum does on a server that has
    it on, and drop the pool's connections. Without it (autovacuum is off on the test server)
    the load's long-lived connection keeps the generic plans psycopg's prepared statements got
    while the table was empty, sequential scans, and every user costs more than the last."""
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def user_input(index: int) -> Any:
    """What the SCIM front hands the provisioning service for user `index`'s POST body: the
    body validated by the front's User model, then the front's own `scim.mapping.user_input`."""
    from scim2_models import Context

    from scim.mapping import user_input as front_user_input
    from scim.schemas import SourceUser

    resource = SourceUser.model_validate(payload(index), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    return front_user_input(resource)
