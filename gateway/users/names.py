"""Name normalisation for lookups: user names and DNs match case-insensitively (SPEC §6)."""

import re

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn, parse_dn

from gateway.errors import InvalidInput


def name_key(name: str) -> str:
    """The lookup key of a login name: Unicode case folding, surrounding spaces dropped."""
    return name.strip().casefold()


# RFC 4514 §2.4: a backslash escapes one special character, or starts a pair of hex digits.
_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{2})|(.))", re.DOTALL)


# A DN of plain `type=value` RDNs (no escape, quote, multi-valued RDN or special character),
# as directories return nearly every entry's DN, is split without the full RFC 4514 parser: a
# bulk run splits the DN of every entry it reads. Anything else takes the parser.
_PLAIN_DN = re.compile(r"[^\\\"+;<>#=,]+=[^\\\"+;<>#=,]+(?:,[^\\\"+;<>#=,]+=[^\\\"+;<>#=,]+)*")
_PLAIN_TYPE = re.compile(r" *[A-Za-z][A-Za-z0-9-]* *")


def _plain_parts(dn: str) -> tuple[str, ...] | None:
    if not _PLAIN_DN.fullmatch(dn):
        return None
    rdns = []
    for rdn in dn.split(","):
        attribute, _, value = rdn.partition("=")
        if not _PLAIN_TYPE.fullmatch(attribute) or not value.strip():
            return None
        rdns.append(f"{attribute.strip().casefold()}={' '.join(value.casefold().split())}")
    return tuple(rdns)


def dn_parts(dn: str) -> tuple[str, ...] | None:
    """A DN's RDNs as a directory compares them, most significant last; None if not a DN.

    RFC 4514 syntax, RFC 4518 caseIgnoreMatch: attribute types and values are case-folded,
    `\\XX` and `\\c` escapes decoded, insignificant spaces dropped, the parts of a
    multi-valued RDN sorted. Attribute types given as OIDs are not mapped to names (that needs
    the schema): such a DN only fails to match, it never matches too much. Text that is not
    UTF-8, or holds a raw NUL, is no DN (RFC 4514 §2, §2.4).
    """
    if "\x00" in dn:
        return None  # RFC 4514 §2.4: a NUL in a value is always escaped, as \00
    try:
        dn.encode("utf-8")
    except UnicodeError:
        return None
    if (plain := _plain_parts(dn)) is not None:
        return plain
    try:
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


def dn_key(dn: str) -> str:
    """A DN's comparison key as one string (`dn_parts` joined), for the store and lookups.

    Raises:
        InvalidInput: the text is not a DN.
    """
    parts = dn_parts(dn)
    if parts is None:
        raise InvalidInput("dn", "not a valid distinguished name (RFC 4514)")
    return parts_key(parts)


def parts_key(parts: tuple[str, ...]) -> str:
    """`dn_key` of a DN already split by `dn_parts`."""
    # Values are decoded, so a separator inside one is escaped again: no two DNs share a key.
    return ",".join(part.replace("\\", "\\\\").replace(",", "\\,") for part in parts)


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


def member_dn(user_name: str, source_id: str, suffix: str) -> str:
    """The DN a SCIM or local user is served under: `uid=<userName>,ou=<source id>,<suffix>`.

    The userName is escaped as an RDN value (RFC 4514 §2.4), so no name can add RDNs.
    """
    return f"uid={escape_rdn(user_name)},ou={escape_rdn(source_id)},{suffix}"
