"""The kinds of name a user binds with, and which attribute each is matched against (SPEC §6)."""

from enum import StrEnum

from gateway.config import AdSource, LdapSource

__all__ = ["NameKind", "name_assertion"]

#: Active Directory's attributes for user@domain and DOMAIN\user names.
UPN_ATTRIBUTE = "userPrincipalName"
SAM_ACCOUNT_NAME = "sAMAccountName"


class NameKind(StrEnum):
    """How the name a client sent is to be read."""

    DN = "dn"
    #: A bare login name, matched against the source's login_attribute.
    LOGIN = "login"
    #: user@domain.
    UPN = "upn"
    #: DOMAIN\user (Windows down-level logon name).
    DOWNLEVEL = "downlevel"


def name_assertion(
    kind: NameKind, value: str, source: LdapSource | AdSource
) -> tuple[str, str] | None:
    """The (attribute, value) a non-DN name is looked up by, or None when it cannot match.

    LOGIN matches login_attribute. UPN matches userPrincipalName on `ad` sources and, on
    `ldap` sources, login_attribute with the whole string. DOWNLEVEL matches sAMAccountName
    when the domain part equals the source's netbios_domain (case-insensitively); `ldap`
    sources have no NetBIOS domain, so it never matches there. An empty name never matches.

    Raises:
        ValueError: `kind` is DN, which is not looked up by an attribute.
    """
    if not value:
        return None
    match kind:
        case NameKind.LOGIN:
            return (source.login_attribute, value)
        case NameKind.UPN:
            attribute = UPN_ATTRIBUTE if isinstance(source, AdSource) else source.login_attribute
            return (attribute, value)
        case NameKind.DOWNLEVEL:
            domain, separator, name = value.partition("\\")
            if not separator or not name or not isinstance(source, AdSource):
                return None
            expected = source.netbios_domain
            if expected is None or domain.casefold() != expected.casefold():
                return None
            return (SAM_ACCOUNT_NAME, name)
        case NameKind.DN:
            raise ValueError("a DN is not looked up by an attribute")
