"""The clients the front must satisfy, as the tests drive them: the OpenLDAP command-line tools,
ldap3, python-ldap, and a look into the gateway's own store to know what it should answer."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
from sqlalchemy import select

from gateway.users.names import name_key
from gateway.users.records import UserView, view_of
from store import users as queries
from store.db import Store
from store.models import User
from tests.gateway.realgw import unique
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.slapd import Slapd, close_quietly

PEOPLE = "ou=people,dc=example,dc=org"


@dataclass(frozen=True)
class Person:
    """A user a test added to the shared slapd."""

    uid: str
    dn: str
    password: str


def add_person(server: Slapd, prefix: str, ou: str = "people", **attributes: object) -> Person:
    uid = unique(prefix)
    password = f"{uid}-pw"
    dn = server.add_user(uid, ou=ou, userPassword=password, **attributes)
    return Person(uid, dn, password)


# -- OpenLDAP command-line tools ----------------------------------------------------------------


def ldap_tool(*args: str, ca_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `ldapwhoami`/`ldapsearch` with `args`; TLS trusts `ca_file` (LDAPTLS_CACERT)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    if ca_file is not None:
        env["LDAPTLS_CACERT"] = str(ca_file)
    return subprocess.run(
        list(args), capture_output=True, text=True, check=False, timeout=30, env=env
    )


def whoami(url: str, name: str, password: str, *extra: str, ca_file: Path | None = None):
    return ldap_tool("ldapwhoami", "-x", "-H", url, "-D", name, "-w", password, *extra,
                     ca_file=ca_file)  # fmt: skip


def service_search(gateway: GatewayProcess, base: str, *args: str):
    """`ldapsearch -x` bound as the gateway's service account; `args` as ldapsearch takes them."""
    return ldap_tool(
        "ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", gateway.url,
        "-D", SERVICE_DN, "-w", SERVICE_PASSWORD, "-b", base, *args,
    )  # fmt: skip


def ldif_entries(output: str) -> list[dict[str, list[str]]]:
    """`ldapsearch -LLL` output as entries: attribute name (lower case) -> values; "dn" too.
    Paged-results chatter (`# pagedresults: ...`) is skipped."""
    entries: list[dict[str, list[str]]] = []
    for block in output.strip().split("\n\n"):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith("#") or (": " not in line and "::" not in line):
                continue
            name, _, value = line.partition(":")
            entry.setdefault(name.lower(), []).append(value.lstrip(": ").strip())
        if "dn" in entry:
            entries.append(entry)
    return entries


# -- ldap3 --------------------------------------------------------------------------------------


@contextlib.contextmanager
def ldap3_connection(
    gateway: GatewayProcess, user: str | None = None, password: str | None = None, **options
) -> Iterator[ldap3.Connection]:
    """An ldap3 connection to the gateway's plain port, opened (not bound); closed at the end."""
    server = ldap3.Server("127.0.0.1", port=gateway.port, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=user, password=password, receive_timeout=10, **options)
    try:
        conn.open()
        yield conn
    finally:
        close_quietly(conn)


def service_connection(gateway: GatewayProcess) -> contextlib.AbstractContextManager:
    return _bound(gateway, SERVICE_DN, SERVICE_PASSWORD)


@contextlib.contextmanager
def _bound(gateway: GatewayProcess, user: str, password: str) -> Iterator[ldap3.Connection]:
    with ldap3_connection(gateway, user, password) as conn:
        assert conn.bind(), conn.result
        yield conn


def can_bind(gateway: GatewayProcess, user: str, password: str) -> dict:
    """A fresh connection's bind result (ldap3's `result` dict)."""
    with ldap3_connection(gateway, user, password) as conn:
        conn.bind()
        return dict(conn.result)


# -- the gateway's store -------------------------------------------------------------------------


@contextlib.contextmanager
def store_of(gateway: GatewayProcess) -> Iterator[Store]:
    """The gateway's SQLite store, opened beside the running gateway (reads only)."""
    store = Store.connect(gateway.store_url)
    try:
        yield store
    finally:
        store.close()


def stored_users(gateway: GatewayProcess, source_id: str) -> list[UserView]:
    with store_of(gateway) as store, store.reading() as session:
        rows = session.scalars(select(User).where(User.source_id == source_id))
        return [view_of(row) for row in rows]


def stored_user(gateway: GatewayProcess, source_id: str, user_name: str) -> UserView | None:
    with store_of(gateway) as store, store.reading() as session:
        user = queries.find_by_user_name_key(session, source_id, name_key(user_name))
        return view_of(user) if user else None
