"""Distinguished names compared as a directory compares them (RFC 4514 syntax, RFC 4518 rules).

Scope checks compare a DN with the configured roots: `is_within` holds when the DN equals a
root or lies below it. Attribute types and values are case-folded, ``\\XX`` and ``\\c``
escapes decoded and insignificant spaces dropped (caseIgnoreMatch, RFC 4518 §2.6.1), and the
parts of a multi-valued RDN sorted. Attribute types given as OIDs are not mapped to names (that
needs the schema): such a DN only fails to match, it never matches too much.
"""

import re
from collections.abc import Iterable

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

__all__ = ["dn_key", "is_within"]

# RFC 4514 §2.4: a backslash escapes one special character, or starts a pair of hex digits.
_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{2})|(.))", re.DOTALL)


def dn_key(dn: str) -> tuple[str, ...] | None:
    """The comparison key of a DN, most significant RDN last; None if the text is not a DN
    (or not UTF-8, which no DN on the wire can be, RFC 4514 §2)."""
    try:
        dn.encode("utf-8")
        parts = parse_dn(dn, escape=False, strip=True)
    except (LDAPInvalidDnError, UnicodeError):
        return None
    rdns: list[str] = []
    current: list[str] = []
    for attribute, value, separator in parts:
        decoded = _unescape(value)
        if decoded is None:
            return None
        current.append(f"{attribute.strip().casefold()}={' '.join(decoded.casefold().split())}")
        if separator != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    return tuple(rdns) if rdns else None


def is_within(dn: str, roots: Iterable[str]) -> bool:
    """Whether `dn` is one of `roots` or lies below one of them (compared as by `dn_key`)."""
    key = dn_key(dn)
    if key is None:
        return False
    for root in roots:
        root_key = dn_key(root)
        if root_key is not None and len(key) >= len(root_key) and key[-len(root_key) :] == root_key:
            return True
    return False


def _unescape(value: str) -> str | None:
    """Decode RFC 4514 escapes; hex pairs are UTF-8 octets. None when they are not UTF-8."""
    if "\\" not in value:
        return value
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(value):
        out += value[position : match.start()].encode()
        hex_pair, char = match.groups()
        out += bytes.fromhex(hex_pair) if hex_pair else char.encode()
        position = match.end()
    out += value[position:].encode()
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None
