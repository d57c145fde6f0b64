"""The Samba DC's seed: OUs, the service account, users in every account state, groups.

`AdUser` records what a user was made with (its DN carries the full name, not the logon
name, as in real AD); `write_seed` and `write_user` add them over an Administrator
connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ldap3
from ldap3.utils.dn import escape_rdn

from tests.servers.ldap_client import check
from tests.servers.samba_domain import (
    BASE_DN,
    DNS_DOMAIN,
    NETBIOS_DOMAIN,
    UF_ACCOUNTDISABLE,
    UF_DONT_EXPIRE_PASSWD,
    UF_NORMAL_ACCOUNT,
    filetime,
    unicode_pwd,
)
from tests.servers.samba_install import SambaError

__all__ = [
    "OUS",
    "PAST_EXPIRY",
    "SERVICE_SAM",
    "AdUser",
    "add_entry",
    "group_dn",
    "seed_group_members",
    "seed_password",
    "seed_user_records",
    "service_account",
    "user_record",
    "write_group",
    "write_seed",
    "write_user",
]

SERVICE_SAM = "idgate-svc"
OUS = ("People", "Contractors", "Services", "Groups")


@dataclass(frozen=True)
class AdUser:
    """A user in the DC. `attributes` holds what was written besides objectClass and
    unicodePwd, each as a tuple of strings; `groups` the DNs of its groups."""

    sam: str
    dn: str
    upn: str
    password: str
    purpose: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def down_level(self) -> str:
        """`IDGATE\\<sam>`, the NT4-style logon name AD accepts as a simple-bind name."""
        return f"{NETBIOS_DOMAIN}\\{self.sam}"


@dataclass(frozen=True)
class _UserSpec:
    sam: str
    full_name: str  # the CN: AD DNs carry the display name, not the logon name
    ou: str
    purpose: str
    upn_local: str = ""  # default: sam
    uac: int = UF_NORMAL_ACCOUNT
    extra: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()


PAST_EXPIRY = filetime(datetime(2020, 1, 1, tzinfo=UTC))

_USERS = (
    _UserSpec(
        "alice", "Alice Liddell", "People",
        "active; mail, mobile, telephoneNumber, title, department; in staff and vpn-users",
        extra={
            "mail": f"alice@{DNS_DOMAIN}",
            "mobile": "+1 202 555 0101",
            "telephoneNumber": "+1 202 555 0111",
            "title": "Engineer",
            "department": "Research",
        },
        groups=("staff", "vpn-users"),
    ),
    _UserSpec(
        "bob", "Bob Marley", "People",
        "disabled: userAccountControl 0x202; bind fails with data 533",
        uac=UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE,
        extra={"mail": f"bob@{DNS_DOMAIN}", "mobile": "+1 202 555 0102"},
        groups=("staff",),
    ),
    _UserSpec(
        "carol", "Carol Danvers", "People",
        "expired: accountExpires 2020-01-01 (FILETIME); bind fails with data 701",
        extra={"mail": f"carol@{DNS_DOMAIN}", "accountExpires": str(PAST_EXPIRY)},
        groups=("staff",),
    ),
    _UserSpec(
        "dave", "Dave Bowman", "People",
        "must change password: pwdLastSet 0; bind fails with data 773",
        extra={"mail": f"dave@{DNS_DOMAIN}", "pwdLastSet": "0"},
        groups=("staff",),
    ),
    _UserSpec(
        "erin", "Erin Brockovich", "Contractors",
        "active but out of scope (OU=Contractors)",
        extra={"mail": f"erin@{DNS_DOMAIN}", "mobile": "+1 202 555 0105"},
    ),
    _UserSpec(
        "frank", "Frank Jones", "People",
        "active; UPN frank.jones@idgate.test differs from sAMAccountName frank",
        upn_local="frank.jones",
        extra={
            "mail": f"frank.jones@{DNS_DOMAIN}",
            "mobile": "+1 202 555 0106",
            "telephoneNumber": "+1 202 555 0116",
        },
        groups=("staff",),
    ),
)  # fmt: skip


def seed_password(sam: str) -> str:
    """The seed's password rule: AD complexity (upper, lower, digit, symbol), per account."""
    return f"Passw0rd!{sam}"


def user_record(
    sam: str,
    ou: str = "People",
    *,
    password: str | None = None,
    full_name: str | None = None,
    upn: str | None = None,
    uac: int = UF_NORMAL_ACCOUNT,
    purpose: str = "",
    groups: Sequence[str] = (),
    **attrs: Any,
) -> AdUser:
    """The record of a user to add: `CN=<full_name or sam>,OU=<ou>,<base>`, password
    `seed_password(sam)` and UPN `<sam>@idgate.test` unless given; `attrs` are further
    attributes (str, int, or a list of them)."""
    cn = full_name or sam
    given, _, surname = cn.partition(" ")
    upn = upn or f"{sam}@{DNS_DOMAIN}"
    attributes: dict[str, Any] = {
        "sAMAccountName": sam,
        "userPrincipalName": upn,
        "displayName": cn,
        "userAccountControl": uac,
        **({"givenName": given, "sn": surname} if surname else {}),
        **attrs,
    }
    return AdUser(
        sam=sam,
        dn=f"CN={escape_rdn(cn)},OU={ou},{BASE_DN}",
        upn=upn,
        password=seed_password(sam) if password is None else password,
        purpose=purpose,
        attributes={name: _as_strings(value) for name, value in attributes.items()},
        groups=tuple(groups),
    )


def group_dn(name: str) -> str:
    """The DN of a group under OU=Groups."""
    return f"CN={escape_rdn(name)},OU=Groups,{BASE_DN}"


def seed_user_records() -> dict[str, AdUser]:
    """The seed users by sAMAccountName."""
    return {
        spec.sam: user_record(
            spec.sam, spec.ou,
            full_name=spec.full_name,
            upn=f"{spec.upn_local or spec.sam}@{DNS_DOMAIN}",
            uac=spec.uac,
            purpose=spec.purpose,
            groups=[group_dn(name) for name in spec.groups],
            **spec.extra,
        )
        for spec in _USERS
    }  # fmt: skip


def service_account() -> AdUser:
    """The gateway's read-only service account: a plain domain user (AD lets every
    authenticated user read users), under OU=Services; its password never expires."""
    return user_record(
        SERVICE_SAM, "Services",
        uac=UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD,
        purpose="read-only service account of the gateway",
        description="read-only service account of the gateway",
    )  # fmt: skip


def seed_group_members() -> dict[str, tuple[str, ...]]:
    """Group DN -> member DNs (global security groups under OU=Groups)."""
    users = seed_user_records().values()
    dns = sorted({dn for user in users for dn in user.groups})
    return {dn: tuple(user.dn for user in users if dn in user.groups) for dn in dns}


def write_seed(
    conn: ldap3.Connection,
    service: AdUser,
    users: Iterable[AdUser],
    groups: Mapping[str, Sequence[str]],
) -> None:
    """Add the OUs, the service account, `users` and `groups` (DN -> member DNs).

    Raises: SambaError when an add fails.
    """
    for ou in OUS:
        add_entry(conn, f"OU={ou},{BASE_DN}", ["top", "organizationalUnit"], {})
    write_user(conn, service)
    for user in users:
        write_user(conn, user)
    for dn, members in groups.items():
        write_group(conn, dn, dn.split(",", 1)[0].split("=", 1)[1], members)


def write_user(conn: ldap3.Connection, user: AdUser) -> None:
    """Add `user` with its password; with none if its password is "" (AD then refuses an
    enabled account unless userAccountControl says disabled). Raises: SambaError."""
    attributes: dict[str, Any] = {name: list(values) for name, values in user.attributes.items()}
    # unicodePwd in the same add: the account is never enabled without its password.
    if user.password:
        attributes["unicodePwd"] = unicode_pwd(user.password)
    add_entry(conn, user.dn, ["top", "person", "organizationalPerson", "user"], attributes)


def write_group(conn: ldap3.Connection, dn: str, name: str, members: Sequence[str]) -> None:
    """Add a global security group (AD then sets memberOf on its members). Raises: SambaError."""
    add_entry(conn, dn, ["top", "group"], {"sAMAccountName": name, "member": list(members)})


def add_entry(
    conn: ldap3.Connection, dn: str, classes: list[str], attributes: dict[str, Any]
) -> None:
    """Add an entry. Raises: SambaError."""
    conn.add(dn, classes, attributes)
    check(conn, f"add {dn}", SambaError)


def _as_strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)
