"""What the resilience scenarios share: a whole gateway process on any store, with SCIM sources,
and a PostgreSQL schema of its own per scenario.

- `FullGateway`: `idgate serve --config F` (both fronts) like `AdminGateway`, but on the store
  it is given (a PostgreSQL URL, or SQLite in its temp dir), with `scim` sources whose bearer
  tokens it knows in clear, and more `[sync]`/`[ldap]`/`[http]` keys. Several may share one
  store: each brings it to the head revision (as `idgate db upgrade` does; idempotent) first.
- `fresh_pg_schema(url)`: a new schema on the test server, its URL scoped to it with
  `search_path`, dropped afterwards (several processes must see the same empty store, which the
  session-wide `pg_schema_url` fixture cannot promise).
- `scim_source(id, token)`: a `[[sources]]` table of kind `scim` with the token's argon2 hash.

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from store.db import make_engine
from store.migrate import upgrade
from tests.gateway.admin_gateway import SUPER_TOKEN, AdminGateway
from tests.ldapproxy.gateway_process import (
    hashed,
    migrated_store,
)

__all__ = ["FullGateway", "admin_client", "fresh_pg_schema", "scim_client", "scim_source"]

_UPGRADING = threading.Lock()


def scim_source(source_id: str, token: str, **overrides: Any) -> dict[str, Any]:
    """A SCIM provisioning source (SPEC §3): clients present `token` as a Bearer token."""
    return {"id": source_id, "kind": "scim", "token_hash": hashed(token), **overrides}


class FullGateway(AdminGateway):
    """Both fronts of one gateway process, on `store_url` (default: SQLite in its workdir)."""

    def __init__(
        self,
        sources: Sequence[Mapping[str, Any]],
        *,
        store_url: str | None = None,
        sync: Mapping[str, Any] | None = None,
        ldap: Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
        scheduler: bool = False,
        log_level: str = "info",
        base_dir: Path | None = None,
    ) -> None:
        """
        Parameters:
            sources: `[[sources]]` tables (realgw.slapd_source, scim_source).
            store_url: `[store] url`; None for SQLite in the gateway's temp dir.
            sync, ldap, http: more keys of those tables.
            scheduler: run the daily jobs' scheduler (off, as in AdminGateway, by default).
        """
        super().__init__(sources, sync={"scheduler": scheduler, **(sync or {})}, base_dir=base_dir)
        self._store = store_url
        self._ldap = dict(ldap or {})
        self._http = dict(http or {})
        self.log_level = log_level

    @property
    def store_url(self) -> str:
        return self._store or f"sqlite:///{self.store_path}"

    def scim_url(self, source_id: str) -> str:
        """The SCIM base URL of one source (docs/configuration.md)."""
        return f"{self.http_url}/scim/v2/sources/{source_id}"

    def _prepare_store(self) -> None:
        if self._store is None:
            migrated_store(self.store_path)
            return
        # What `idgate db upgrade` runs, in this process (idempotent; a Python start less).
        # One at a time: alembic's context is process-global.
        with _UPGRADING:
            engine = make_engine(self._store)
            try:
                upgrade(engine)
            finally:
                engine.dispose()

    def document(self) -> dict[str, Any]:
        document = super().document()
        document["http"].update(self._http)
        return document

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<FullGateway {self.http_url if self.http_port else 'not started'} {state}>"


def admin_client(gateway: AdminGateway, token: str = SUPER_TOKEN) -> httpx.Client:
    """An httpx client on the gateway's admin API (`/admin/...`), as the super admin."""
    return httpx.Client(
        base_url=f"{gateway.http_url}/admin",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def scim_client(gateway: FullGateway, source_id: str, token: str) -> httpx.Client:
    """An httpx client on one SCIM source's base URL (RFC 7644 §3.13: Bearer token)."""
    return httpx.Client(
        base_url=f"{gateway.http_url}/scim/v2/sources/{source_id}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=30,
    )


@contextlib.contextmanager
def fresh_pg_schema(url: str) -> Iterator[str]:
    """A new, empty schema on the server at `url`; yields `url` scoped to it. Dropped at exit.

    The gateways migrate it themselves (`idgate db upgrade` at their first start)."""
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"idgate_res_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
