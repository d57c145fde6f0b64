"""The seed directory: who is in it, with which password, and why.

Each seed user stands for one case the status rules of SPEC §4 have to tell apart (active,
disabled upstream, expired, must change password, out of scope). The entries are rendered
as LDIF and loaded with `slapadd`, which also stores operational attributes
(`pwdAccountLockedTime`, `pwdReset`) that a client could not write. Groups are not in the
LDIF: `Slapd` adds them over LDAP once it runs, so the memberof overlay writes `memberOf`
on their members exactly as it would in production.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_SUFFIX = "dc=example,dc=org"
MAIL_DOMAIN = "example.org"

# Relative to the suffix.
PEOPLE = "ou=people"
CONTRACTORS = "ou=contractors"
GROUPS = "ou=groups"
SERVICES = "ou=services"
POLICIES = "ou=policies"
DEFAULT_POLICY = f"cn=default,{POLICIES}"
SERVICE_ACCOUNT = f"cn=idgate,{SERVICES}"
SERVICE_PASSWORD = "idgate-secret"


@dataclass(frozen=True)
class SeedUser:
    """A user of the seed directory.

    `attributes` holds what the entry carries besides objectClass and userPassword
    (operational ones such as pwdReset included), each as a tuple of values.
    """

    uid: str
    dn: str
    password: str
    purpose: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class _UserSpec:
    uid: str
    ou: str
    given_name: str
    surname: str
    purpose: str
    extra: Mapping[str, str] = field(default_factory=dict)
    shadow: bool = False
    groups: tuple[str, ...] = ()


_USERS = (
    _UserSpec(
        "alice", PEOPLE, "Alice", "Liddell",
        "active, phones for SMS and voice, member of staff and vpn-users",
        {"mobile": "+1 202 555 0101", "telephoneNumber": "+1 202 555 0111"},
        groups=("staff", "vpn-users"),
    ),
    _UserSpec(
        "bob", PEOPLE, "Bob", "Marley",
        "disabled: ppolicy permanent lock, every bind fails with invalidCredentials",
        {"pwdAccountLockedTime": "000001010000Z", "mobile": "+1 202 555 0102"},
        groups=("staff",),
    ),
    _UserSpec(
        "carol", PEOPLE, "Carol", "Danvers",
        "expired: shadowExpire 1 (1970-01-02); slapd still lets her bind, idgate must not",
        {"shadowExpire": "1"},
        shadow=True,
        groups=("staff",),
    ),
    _UserSpec(
        "dave", PEOPLE, "Dave", "Bowman",
        "must change password: pwdReset TRUE, bind succeeds with ppolicy changeAfterReset",
        {"pwdReset": "TRUE"},
        groups=("staff",),
    ),
    _UserSpec(
        "erin", CONTRACTORS, "Erin", "Brockovich",
        "active but out of scope (ou=contractors)",
        {"mobile": "+1 202 555 0105"},
    ),
    _UserSpec(
        "frank", PEOPLE, "Frank", "Poole",
        "active, shadowExpire in 2100 (not expired); rename and phone-change tests"
        " (mutate him only on a slapd_factory instance)",
        {
            "mobile": "+1 202 555 0106",
            "telephoneNumber": "+1 202 555 0116",
            "shadowExpire": "47482",
        },
        shadow=True,
        groups=("staff",),
    ),
)  # fmt: skip


def seed_users(suffix: str = DEFAULT_SUFFIX) -> dict[str, SeedUser]:
    """The seed users by uid, with DNs under `suffix`; passwords are `<uid>-secret`."""
    users: dict[str, SeedUser] = {}
    for spec in _USERS:
        attributes = {name: (value,) for name, value in _user_attributes(spec).items()}
        users[spec.uid] = SeedUser(
            uid=spec.uid,
            dn=f"uid={spec.uid},{spec.ou},{suffix}",
            password=_password(spec.uid),
            purpose=spec.purpose,
            attributes=attributes,
            groups=spec.groups,
        )
    return users


def seed_groups(suffix: str = DEFAULT_SUFFIX) -> dict[str, tuple[str, ...]]:
    """Group DN -> member DNs, in the order the groups should be added."""
    users = seed_users(suffix)
    names = sorted({name for user in users.values() for name in user.groups})
    return {
        f"cn={name},{GROUPS},{suffix}": tuple(
            user.dn for user in users.values() if name in user.groups
        )
        for name in names
    }


def base_ldif(suffix: str = DEFAULT_SUFFIX, *, with_users: bool = True) -> str:
    """The entries loaded with slapadd: suffix, OUs, default password policy, service account
    and (with_users) the seed users."""
    first_rdn_value = suffix.split(",", 1)[0].split("=", 1)[1]
    entries: list[list[tuple[str, str]]] = [
        [
            ("dn", suffix),
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", first_rdn_value),
            ("o", "idgate test directory"),
        ]
    ]
    for ou in (PEOPLE, CONTRACTORS, GROUPS, SERVICES, POLICIES):
        entries.append(
            [
                ("dn", f"{ou},{suffix}"),
                ("objectClass", "organizationalUnit"),
                ("ou", ou.split("=", 1)[1]),
            ]
        )
    entries.append(
        [
            ("dn", f"{DEFAULT_POLICY},{suffix}"),
            ("objectClass", "device"),  # any structural class with cn; pwdPolicy is auxiliary
            ("objectClass", "pwdPolicy"),
            ("cn", "default"),
            ("pwdAttribute", "userPassword"),
            ("pwdLockout", "TRUE"),
            ("pwdMustChange", "TRUE"),
            ("pwdAllowUserChange", "TRUE"),
            # 0 = failed binds never lock anyone: tests that try wrong passwords on the
            # shared server must not lock seed users for the rest of the session. Set it on
            # your own instance (slapd_factory) to test lockout.
            ("pwdMaxFailure", "0"),
        ]
    )
    entries.append(
        [
            ("dn", f"{SERVICE_ACCOUNT},{suffix}"),
            ("objectClass", "organizationalRole"),
            ("objectClass", "simpleSecurityObject"),
            ("cn", "idgate"),
            ("description", "read-only service account of the gateway"),
            ("userPassword", ssha(SERVICE_PASSWORD)),
        ]
    )
    if with_users:
        for spec in _USERS:
            entry = [("dn", f"uid={spec.uid},{spec.ou},{suffix}")]
            entry += [("objectClass", "inetOrgPerson")]
            entry += [("objectClass", "shadowAccount")] if spec.shadow else []
            entry += list(_user_attributes(spec).items())
            entry += [("userPassword", ssha(_password(spec.uid)))]
            entries.append(entry)
    return "\n".join(render_entry(entry) for entry in entries)


def ssha(password: str, salt: bytes | None = None) -> str:
    """`{SSHA}` userPassword value (RFC 2307 style: base64(sha1(password + salt) + salt))."""
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def render_entry(lines: Iterable[tuple[str, str]]) -> str:
    """One LDIF record (RFC 2849); values that are not SAFE-STRING are base64-encoded."""
    return "".join(_ldif_line(name, value) for name, value in lines) + "\n"


# RFC 2849 SAFE-STRING: no leading space, colon or '<', ASCII without NUL, CR, LF, and no
# trailing space (slapd would strip it).
_SAFE_STRING = re.compile(
    r"^(?:[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*)?$"
)


def _ldif_line(name: str, value: str) -> str:
    if _SAFE_STRING.match(value) and not value.endswith(" "):
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}\n"


def _password(uid: str) -> str:
    return f"{uid}-secret"


def _user_attributes(spec: _UserSpec) -> dict[str, str]:
    return {
        "uid": spec.uid,
        "cn": f"{spec.given_name} {spec.surname}",
        "sn": spec.surname,
        "givenName": spec.given_name,
        "displayName": f"{spec.given_name} {spec.surname}",
        "mail": f"{spec.uid}@{MAIL_DOMAIN}",
        **spec.extra,
    }
