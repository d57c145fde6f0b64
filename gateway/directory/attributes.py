"""Which attributes a search asks for: what the id, login, attribute and status maps name."""

from gateway.config import AdSource, LdapSource
from gateway.directory.entry import SECRET_ATTRIBUTES
from gateway.directory.names import SAM_ACCOUNT_NAME, UPN_ATTRIBUTE
from gateway.engine.statusmap import AD_PWD_LAST_SET, AD_USER_ACCOUNT_CONTROL_COMPUTED

__all__ = ["requested_attributes"]


def requested_attributes(source: LdapSource | AdSource) -> tuple[str, ...]:
    """The attribute list of every user search, without duplicates (case-insensitive) and
    without password attributes, whatever the configuration names."""
    attributes = source.attributes
    status = source.status
    names: list[str | None] = [
        source.id_attribute,
        source.login_attribute,
        attributes.user_name,
        attributes.display_name,
        attributes.given_name,
        attributes.family_name,
        attributes.email,
        attributes.sms_phone,
        attributes.voice_phone,
        attributes.groups,
        *attributes.policy,
        status.disabled_attribute,
        status.expiration_attribute,
        "objectClass",
    ]
    if isinstance(source, AdSource):
        # Lockout and password expiry live in the constructed attribute (MS-ADTS
        # §3.1.1.4.5.17), which is only returned when asked for by name.
        names += [AD_USER_ACCOUNT_CONTROL_COMPUTED, AD_PWD_LAST_SET, UPN_ATTRIBUTE]
        names += [SAM_ACCOUNT_NAME]
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        if name is None or name.lower() in seen or name.lower() in SECRET_ATTRIBUTES:
            continue
        seen.add(name.lower())
        result.append(name)
    return tuple(result)
