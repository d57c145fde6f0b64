"""Name normalisation for lookups: user names and DNs match case-insensitively (SPEC §6)."""

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn, parse_dn

from gateway.errors import InvalidInput


def name_key(name: str) -> str:
    """The lookup key of a login name: Unicode case folding, surrounding spaces dropped."""
    return name.strip().casefold()


def dn_key(dn: str) -> str:
    """A DN's comparison key (RFC 4514 syntax, RFC 4517 caseIgnoreMatch on the values).

    Attribute types and values are case-folded and the spacing around separators dropped, so
    `UID=Alice, OU=People,dc=example,dc=org` and `uid=alice,ou=people,dc=example,dc=org` meet.
    Escapes in values are kept as written: two spellings of one escaped value may not meet,
    which only makes a lookup miss (then the upstream search decides), never match too much.

    Raises:
        InvalidInput: the text is not a DN.
    """
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError as exc:
        raise InvalidInput("dn", "not a valid distinguished name (RFC 4514)") from exc
    rdns: list[str] = []
    current: list[str] = []
    for attribute, value, separator in parts:
        current.append(f"{attribute.strip().casefold()}={value.strip().casefold()}")
        if separator != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    return ",".join(rdns)


def member_dn(user_name: str, source_id: str, suffix: str) -> str:
    """The DN a SCIM or local user is served under: `uid=<userName>,ou=<source id>,<suffix>`.

    The userName is escaped as an RDN value (RFC 4514 §2.4), so no name can add RDNs.
    """
    return f"uid={escape_rdn(user_name)},ou={escape_rdn(source_id)},{suffix}"
