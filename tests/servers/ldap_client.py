"""Small ldap3 client helpers the server fixtures share: the socket-leak workaround, the
readiness probe, result checks and the `{attribute: value}` -> ldap3 modify translation."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException

__all__ = [
    "accepts",
    "answers_rootdse",
    "bound",
    "check",
    "close_quietly",
    "loose_dn",
    "modify_changes",
]


def close_quietly(conn: ldap3.Connection) -> None:
    """Unbind if possible and always release the socket, even one ldap3 left behind after a
    failed connect or a failed StartTLS."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
    sock = conn.socket
    if sock is not None:
        sock.close()
        conn.socket = None


@contextlib.contextmanager
def bound(
    conn: ldap3.Connection, *, who: str, where: str, error: type[Exception], reason: str
) -> Iterator[ldap3.Connection]:
    """`conn` after its bind; closed (`close_quietly`) when the block ends.

    who, where: the bind name and the URL, for the error messages.
    reason: the result field that says why a bind was refused ("description", or
        "message" where the server puts its diagnostics there, as AD does).
    Raises: `error` when the bind fails or is refused.
    """
    try:
        try:
            accepted = conn.bind()
        except LDAPException as exc:
            raise error(f"bind as {who} to {where}: {exc}") from exc
        if not accepted:
            raise error(f"bind as {who} failed: {conn.result[reason]}")
        yield conn
    finally:
        close_quietly(conn)


def accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port succeeds (within half a second)."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def answers_rootdse(host: str, port: int, attribute: str) -> bool:
    """Whether an anonymous RootDSE read of `attribute` succeeds: what a client does first,
    and proof that the frontend, schema and listener are up."""
    # A plain TCP connect first: ldap3 leaks its socket when a connect is refused
    # (strategy/base.py never closes it), which pytest's filterwarnings=error turns into a
    # failure of whatever test runs when the garbage collector finds it.
    if not accepts(host, port):
        return False
    # No bind: RFC 4511 §4.2.1 allows operations before one.
    server = ldap3.Server(host, port=port, get_info=ldap3.NONE, connect_timeout=0.5)
    conn = ldap3.Connection(server, receive_timeout=2)
    try:
        conn.open()
        return bool(conn.search("", "(objectClass=*)", ldap3.BASE, attributes=[attribute]))
    except LDAPException:
        return False
    finally:
        close_quietly(conn)


def check(conn: ldap3.Connection, what: str, error: type[Exception]) -> None:
    """Raise `error` naming `what` unless the last operation on `conn` succeeded."""
    if conn.result["result"] != 0:
        raise error(f"{what}: {conn.result['description']} {conn.result['message']}")


def modify_changes(changes: Mapping[str, Any]) -> dict[str, list[tuple[str, list[Any]]]]:
    """ldap3's modify argument for `{attribute: value | [values] | None | [(op, [values])]}`:
    replace with the value(s); None removes the attribute (no error when it is absent);
    ldap3's own `[(ldap3.MODIFY_ADD, [values]), ...]` passes through."""
    return {name: _change(value) for name, value in changes.items()}


def _change(value: Any) -> list[tuple[str, list[Any]]]:
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return value  # already ldap3's [(MODIFY_*, [values])]
    if value is None:
        # Replace with no values: removes the attribute, and is no error when it is absent.
        return [(ldap3.MODIFY_REPLACE, [])]
    values = value if isinstance(value, list | tuple) else [value]
    return [(ldap3.MODIFY_REPLACE, list(values))]


def loose_dn(dn: str) -> str:
    """`dn` (or any bind name) lower-cased, without spaces around `,`, `=` and `+`: for
    comparisons that ignore case and spacing."""
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).lower()
