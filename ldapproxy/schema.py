"""The attributes a user entry shows, per source: one vocabulary for filters and for entries.

A directory source's users keep the attribute names of their directory (its login attribute,
its phone attributes, its policy attributes), so a RADIUS server configured against the
directory works unchanged against the gateway. SCIM and local users get inetOrgPerson names.
Attribute descriptions match case-insensitively (RFC 4512 §2.5).
"""

from dataclasses import dataclass, field

from gateway.config import AdSource, LdapSource, SourceConfig
from query.filter import Attr, Field

#: Operational attributes (RFC 4512 §3.4): returned only when asked for by name or by "+".
ENTRY_UUID = "entryUUID"  # RFC 4530; the gateway's id of the record
ENTRY_DN = "entryDN"  # RFC 5020
STATUS = "idgateStatus"  # active | disabled
STATUS_REASON = "idgateStatusReason"
SOURCE = "idgateSource"
PENDING_DELETION = "idgatePendingDeletionSince"

BASE_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")


@dataclass(frozen=True)
class SourceSchema:
    """How one source's users look as entries."""

    source_id: str
    login: str
    sms_phone: str
    voice_phone: str
    policy: tuple[str, ...]
    object_classes: tuple[str, ...]
    #: folded attribute name -> the store field a filter on it compares.
    fields: dict[str, Attr] = field(default_factory=dict)

    def attr(self, name: str) -> Attr | None:
        return self.fields.get(name.casefold())


def schema_of(source: SourceConfig) -> SourceSchema:
    if isinstance(source, LdapSource | AdSource):
        attributes = source.attributes
        login = source.login_attribute
        sms = attributes.sms_phone or "mobile"
        voice = attributes.voice_phone or "telephoneNumber"
        policy = attributes.policy
        classes = tuple(dict.fromkeys((*BASE_CLASSES, source.user_object_class)))
        if isinstance(source, AdSource):
            classes = tuple(dict.fromkeys((*classes, "user")))
    else:
        login, sms, voice, policy, classes = "uid", "mobile", "telephoneNumber", (), BASE_CLASSES
    fields = {
        "uid": Attr(Field.USER_NAME),
        login: Attr(Field.USER_NAME),
        "cn": Attr(Field.CN),
        "displayName": Attr(Field.DISPLAY_NAME),
        "givenName": Attr(Field.GIVEN_NAME),
        "sn": Attr(Field.FAMILY_NAME),
        "mail": Attr(Field.EMAIL),
        sms: Attr(Field.SMS_PHONE),
        voice: Attr(Field.VOICE_PHONE),
        "memberOf": Attr(Field.GROUP),
        ENTRY_UUID: Attr(Field.ID),
        STATUS: Attr(Field.STATUS),
        STATUS_REASON: Attr(Field.REASON),
        SOURCE: Attr(Field.SOURCE),
    }
    if isinstance(source, AdSource):
        fields["userPrincipalName"] = Attr(Field.UPN)
    for name in policy:
        fields[name] = Attr(Field.POLICY, name)
    return SourceSchema(
        source_id=source.id,
        login=login,
        sms_phone=sms,
        voice_phone=voice,
        policy=policy,
        object_classes=classes,
        fields={name.casefold(): attr for name, attr in fields.items()},
    )
