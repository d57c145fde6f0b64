"""The HTTP front in-process: `gateway.runtime.main.build` on a test store, served by Starlette's
TestClient (STYLE habit 14), with one `scim` source, one `entra` source, a `corp` directory
source that is never contacted, and two administrators.

`Harness` gives one ready client per caller, each with its bearer token and its base URL:

- `scim`:     /scim/v2/sources/scim   (generic SCIM source, strict RFC 7644)
- `entra`:    /scim/v2/sources/entra  (Microsoft Entra ID source)
- `admin`:    /scim/v2                (admin view, super_admin token)
- `helpdesk`: /scim/v2                (admin view, help_desk token)
- `anonymous`: the app's root, no Authorization header.

Relative paths join the base URL: `harness.entra.post("/Users", json=...)` posts to
/scim/v2/sources/entra/Users. `raw_request(harness.app, ...)` sends what TestClient cannot: a
header's or a query's bytes as they are (not UTF-8, controls). Nothing here imports pytest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from starlette.testclient import TestClient

from gateway.auth.secrets import hash_secret
from gateway.auth.tokens import BearerTokens
from gateway.config import Config, parse_config
from gateway.runtime.main import Runtime, build, http_app

SCIM_SOURCE = "scim"
ENTRA_SOURCE = "entra"
DIRECTORY_SOURCE = "corp"
SCIM_TOKEN = "scim-source-token-0123456789abcdef"
ENTRA_TOKEN = "entra-source-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
HELPDESK_TOKEN = "helpdesk-token-0123456789abcdef"
SCIM_MEDIA_TYPE = "application/scim+json"


@cache
def _hash(secret: str) -> str:
    # argon2 costs ~50 ms a hash: once per test session per secret.
    return hash_secret(secret)


def harness_config(store_url: str, **scim_overrides: Any) -> Config:
    """The configuration the harness serves; `scim_overrides` go into the `scim` source."""
    return parse_config(
        {
            "store": {"url": store_url},
            "admins": [
                {"name": "ops", "role": "super_admin", "token_hash": _hash(ADMIN_TOKEN)},
                {"name": "desk", "role": "help_desk", "token_hash": _hash(HELPDESK_TOKEN)},
            ],
            "sources": [
                {
                    "id": SCIM_SOURCE,
                    "kind": "scim",
                    "token_hash": _hash(SCIM_TOKEN),
                    **scim_overrides,
                },
                {"id": ENTRA_SOURCE, "kind": "entra", "token_hash": _hash(ENTRA_TOKEN)},
                {
                    "id": DIRECTORY_SOURCE,
                    "kind": "ldap",
                    "urls": ["ldap://127.0.0.1:9"],
                    "bind_dn": "cn=idgate,dc=example,dc=org",
                    "bind_password": "unused",
                    "roots": ["ou=people,dc=example,dc=org"],
                },
            ],
        }
    )


_SHARED: dict[str, BearerTokens] = {}


def _tokens(config: Config) -> BearerTokens:
    return _SHARED.setdefault("tokens", BearerTokens(config))


def _client(app: Any, path: str, token: str | None) -> TestClient:
    headers: Mapping[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(
        app,
        base_url=f"http://testserver{path}",
        headers=dict(headers),
        raise_server_exceptions=False,
    )


class Harness:
    """One runtime and its HTTP app, with a client per caller. Close it when done."""

    def __init__(self, store_url: str, **scim_overrides: Any) -> None:
        self.runtime: Runtime = build(harness_config(store_url, **scim_overrides))
        # Every harness has the same tokens: one BearerTokens for the session, so argon2 runs
        # once per token, not once per test (the runtime's own is the same class, unshared).
        self.runtime.tokens = _tokens(self.runtime.config)
        self.app = http_app(self.runtime)
        self.scim = _client(self.app, f"/scim/v2/sources/{SCIM_SOURCE}", SCIM_TOKEN)
        self.entra = _client(self.app, f"/scim/v2/sources/{ENTRA_SOURCE}", ENTRA_TOKEN)
        self.admin = _client(self.app, "/scim/v2", ADMIN_TOKEN)
        self.helpdesk = _client(self.app, "/scim/v2", HELPDESK_TOKEN)
        self.anonymous = _client(self.app, "", None)

    def client(self, path: str, token: str | None) -> TestClient:
        """A client with any base path and token (e.g. one source's token on another)."""
        return _client(self.app, path, token)

    def close(self) -> None:
        for client in (self.scim, self.entra, self.admin, self.helpdesk, self.anonymous):
            client.close()
        self.runtime.close()


@dataclass(frozen=True)
class RawResponse:
    """What `raw_request` got back: the status, the headers (names lower-cased) and the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    app: Any,
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    body: bytes = b"",
) -> RawResponse:
    """One request given to `app` as the ASGI server hands it over, bytes and all.

    TestClient and httpx re-encode what they send (a header's value as UTF-8, a URL's bytes
    percent-encoded); an HTTP server passes a header's obs-text octets (RFC 9110 §5.5) and a
    request target's raw bytes through. `path` is the decoded path, as servers give it.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "headers": [(b"host", b"testserver"), *headers],
    }
    if any(name == b"host" for name, _ in headers):
        scope["headers"] = list(headers)
    messages: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    try:
        asyncio.run(app(scope, receive, send))
    except Exception:  # what a server does with an exception the app let out: a bare 500
        if not any(m["type"] == "http.response.start" for m in messages):
            return RawResponse(500, {}, b"")
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    decoded = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in start["headers"]
    }
    return RawResponse(start["status"], decoded, content)
