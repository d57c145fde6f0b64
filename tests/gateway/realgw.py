"""The real runtime for end-to-end scenarios: `gateway.runtime.main.build(parse_config(...))`
against real directories (test_auth_slapd.py, test_auth_samba.py).

- `slapd_source(urls)` / `samba_source(dc)`: a source table as TOML would give it;
- `gateway_config(store_url, source, **sync)`: the whole configuration;
- `Gateways`: builds runtimes and closes them (and waits for their upstream threads) at the end;
- `record` / `records`: the store's view of users, read straight from the runtime's store;
- `SilentServer`: accepts TCP connections and never answers (a hung directory).
"""

import socket
import threading
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import select

from gateway.auth.binds import AuthOutcome
from gateway.config import Config, parse_config
from gateway.runtime.main import Runtime, build
from gateway.users.names import name_key
from gateway.users.records import UserView, view_of
from store import users as queries
from store.models import User
from tests.reactor import blocking
from tests.servers.samba import SambaAD
from tests.servers.slapd import Slapd

SLAPD_SOURCE = "corp"
SAMBA_SOURCE = "ad"


def slapd_source(urls: Sequence[str], **overrides: Any) -> dict[str, Any]:
    """The `corp` source of the brief: ou=people, ppolicy lock and shadowExpire as status."""
    data: dict[str, Any] = {
        "id": SLAPD_SOURCE,
        "kind": "ldap",
        "urls": list(urls),
        "bind_dn": "cn=idgate,ou=services,dc=example,dc=org",
        "bind_password": "idgate-secret",
        "roots": ["ou=people,dc=example,dc=org"],
        "connect_timeout_seconds": 1,
        "operation_timeout_seconds": 1,
        "attributes": {
            "sms_phone": "mobile",
            "voice_phone": "telephoneNumber",
            "groups": "memberOf",
            "policy": ["title"],
        },
        "status": {
            "disabled_attribute": "pwdAccountLockedTime",
            "expiration_attribute": "shadowExpire",
            "expiration_format": "days",
        },
    }
    data.update(overrides)
    return data


def samba_source(dc: SambaAD, *, ldaps: bool = False, **overrides: Any) -> dict[str, Any]:
    """The `ad` source on the Samba DC: status mapping built in, People as the only root."""
    data: dict[str, Any] = {
        "id": SAMBA_SOURCE,
        "kind": "ad",
        "urls": [dc.ldaps_url if ldaps else dc.url],
        "bind_dn": dc.service_dn,
        "bind_password": dc.service_password,
        "roots": [dc.people_dn],
        "upn_suffixes": [dc.upn_suffix],
        "netbios_domain": dc.netbios_domain,
        "connect_timeout_seconds": 2,
        "operation_timeout_seconds": 5,
        "attributes": {"sms_phone": "mobile", "voice_phone": "telephoneNumber"},
    }
    if ldaps:
        data["ca_file"] = str(dc.ca_file)
        data["tls_server_names"] = [dc.tls_server_name]
    data.update(overrides)
    return data


def gateway_config(store_url: str, source: dict[str, Any], **sync: Any) -> Config:
    """One source, the given store; `sync` overrides [sync] (JIT interval 0 unless given)."""
    settings: dict[str, Any] = {"jit_interval_seconds": 0, **sync}
    return parse_config({"store": {"url": store_url}, "sync": settings, "sources": [source]}, {})


class Gateways:
    """Builds runtimes with `migrate=True`; on exit closes them all and joins their threads,
    so no upstream call outlives the test (a late socket would warn in another test)."""

    def __init__(self) -> None:
        self._made: list[Runtime] = []

    def __call__(self, config: Config) -> Runtime:
        runtime = build(config, migrate=True)
        self._made.append(runtime)
        return runtime

    def close(self, runtime: Runtime) -> None:
        runtime.close()
        runtime.upstream_pool.shutdown(wait=True)

    def __enter__(self) -> "Gateways":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for runtime in self._made:
            self.close(runtime)


def record(runtime: Runtime, user_name: str, source_id: str | None = None) -> UserView | None:
    """The record whose userName is `user_name` (case-insensitive) in the runtime's source."""
    source = source_id or runtime.config.sources[0].id
    with runtime.store.reading() as session:
        user = queries.find_by_user_name_key(session, source, name_key(user_name))
        return view_of(user) if user else None


def record_by_id(runtime: Runtime, user_id: str) -> UserView:
    with runtime.store.reading() as session:
        user = queries.get_user(session, user_id)
        assert user is not None, f"no record {user_id}"
        return view_of(user)


def authenticate(runtime: Runtime, name: str, password: str) -> AuthOutcome:
    return blocking(runtime.authenticator.authenticate, name, password)


def bind_ok(runtime: Runtime, name: str, password: str) -> UserView:
    """Authenticate, require success, and return the record the bind is for."""
    outcome = authenticate(runtime, name, password)
    assert outcome.ok, outcome
    assert outcome.password_verified
    assert outcome.user_id is not None
    return record_by_id(runtime, outcome.user_id)


def records(runtime: Runtime) -> list[UserView]:
    """Every record in the store, of every source."""
    with runtime.store.reading() as session:
        return [view_of(user) for user in session.scalars(select(User).order_by(User.user_name))]


def sync_claim(runtime: Runtime, user_id: str) -> Any:
    """The user's JIT claim column (None when no read holds or forgot the claim)."""
    with runtime.store.reading() as session:
        return session.scalar(select(User.sync_claim_until).where(User.id == user_id))


def unique(prefix: str) -> str:
    """A uid no other test (nor the other store backend's run) uses on a shared server."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def entry_uuid(server: Slapd, dn: str) -> str:
    """The entryUUID slapd gave an entry (read as the rootDN)."""
    with server.admin_connection() as conn:
        assert conn.search(dn, "(objectClass=*)", "BASE", attributes=["entryUUID"])
        return str(conn.entries[0].entryUUID.value)


def object_guid(dc: SambaAD, dn: str) -> str:
    """An AD entry's objectGUID as canonical UUID text."""
    with dc.admin_connection() as conn:
        assert conn.search(dn, "(objectClass=*)", "BASE", attributes=["objectGUID"])
        raw = conn.response[0]["raw_attributes"]["objectGUID"][0]
        return str(uuid.UUID(bytes_le=bytes(raw)))


class SilentServer:
    """Accepts TCP connections and never says a word: a hung directory."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-ldap", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                conn.close()
