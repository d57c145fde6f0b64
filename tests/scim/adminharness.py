"""The admin API in-process: `gateway.runtime.main.build` on a test store, served by Starlette's
TestClient (STYLE habit 14), with two administrators, one `scim` source and one `corp`
directory source.

`corp` points at the real slapd when a test gives its URL (tests/servers), and otherwise at
a port where nothing listens (`DEAD_DIRECTORY`): routes that never reach the directory do not
need one, and those that do answer 502.

`AdminApi` gives one client per caller, each with its token and the /admin base:

- `ops`:       super_admin       - `desk`: help_desk
- `anonymous`: no Authorization  - `scim`: the `scim` source's own endpoint and token

`state()` reads every table of the store, so a test can show a refused request changed
nothing. Nothing here imports pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from gateway.auth.tokens import BearerTokens
from gateway.config import Config, parse_config
from gateway.jobs.service import Jobs
from gateway.runtime.main import Runtime, build, http_app
from store.models import Base
from tests.gateway.realgw import slapd_source
from tests.scim.harness import ADMIN_TOKEN, HELPDESK_TOKEN, SCIM_TOKEN, _hash

SCIM_SOURCE = "scim"
DIRECTORY_SOURCE = "corp"
#: The discard port: connections are refused at once.
DEAD_DIRECTORY = "ldap://127.0.0.1:9"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def admin_config(store_url: str, corp_urls: Sequence[str]) -> Config:
    corp = slapd_source(list(corp_urls), id=DIRECTORY_SOURCE)
    return parse_config(
        {
            "store": {"url": store_url},
            # No daily run during a test; JIT throttle off so single syncs read at once.
            "sync": {"scheduler": False, "jit_interval_seconds": 0},
            "admins": [
                {"name": "ops", "role": "super_admin", "token_hash": _hash(ADMIN_TOKEN)},
                {"name": "desk", "role": "help_desk", "token_hash": _hash(HELPDESK_TOKEN)},
            ],
            "sources": [
                {"id": SCIM_SOURCE, "kind": "scim", "token_hash": _hash(SCIM_TOKEN)},
                corp,
            ],
        },
        {},
    )


_SHARED: dict[str, BearerTokens] = {}


def _tokens(config: Config) -> BearerTokens:
    # One BearerTokens for the session: argon2 runs once per token, not once per test.
    return _SHARED.setdefault("tokens", BearerTokens(config))


def _client(app: Any, path: str, token: str | None) -> TestClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(
        app, base_url=f"http://testserver{path}", headers=headers, raise_server_exceptions=False
    )


class AdminApi:
    """One runtime and its HTTP app, with a client per caller. Close it when done."""

    def __init__(
        self,
        store_url: str,
        *,
        corp_urls: Sequence[str] = (DEAD_DIRECTORY,),
        jobs: Callable[[Runtime], Jobs] | None = None,
    ) -> None:
        """
        Args:
            corp_urls: the `corp` source's servers.
            jobs: builds the runtime's job service instead of `build` (a test's own work).
        """
        self.runtime: Runtime = build(admin_config(store_url, corp_urls))
        self.runtime.tokens = _tokens(self.runtime.config)
        if jobs is not None:
            self.runtime.jobs.close()
            self.runtime.jobs = jobs(self.runtime)
        self.app = http_app(self.runtime)
        self.ops = _client(self.app, "/admin", ADMIN_TOKEN)
        self.desk = _client(self.app, "/admin", HELPDESK_TOKEN)
        self.anonymous = _client(self.app, "/admin", None)
        self.scim = _client(self.app, f"/scim/v2/sources/{SCIM_SOURCE}", SCIM_TOKEN)
        self._clients = [self.ops, self.desk, self.anonymous, self.scim]

    def client(self, token: str | None, *, headers: Mapping[str, str] | None = None) -> TestClient:
        """A client of /admin with any token, or with exactly these `headers`."""
        client = _client(self.app, "/admin", token)
        if headers is not None:
            client.headers.clear()
            client.headers.update(headers)
        self._clients.append(client)
        return client

    def scim_user(self, user_name: str, **attributes: Any) -> str:
        """Provision a user through the `scim` source's endpoint; returns the record's id."""
        response = self.scim.post(
            "/Users", json={"schemas": [CORE_USER], "userName": user_name, **attributes}
        )
        assert response.status_code == 201, response.text
        user_id: str = response.json()["id"]
        return user_id

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in a stable order."""
        with self.runtime.store.reading() as session:
            return {
                table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables
            }

    def wait_job(self, job_id: int, timeout: float = 60.0) -> None:
        """Wait for a job of this runtime to end (returns as soon as it has)."""
        view = self.runtime.jobs.wait(job_id, timeout)
        assert view.done, f"job {job_id} still {view.state} after {timeout} s: {view.counts}"

    def wait_for_audit(self, action: str, timeout: float = 60.0) -> None:
        """Wait until the audit log holds an `action` event (a background thread's last
        write), so that closing the runtime cannot pull the store from under it. Returns as
        soon as it is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.ops.get("/audit", params={"action": action}).json()["events"]
            if events:
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for a {action} audit event")

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.runtime.close()
        self.runtime.upstream_pool.shutdown(wait=True)
