"""From a directory entry to what the source says about the user (SPEC §2, §3, §4.3); pure.

`to_source_user` reads the fields the source's attribute map names and asks the status engine
what the status attributes mean. A status attribute that cannot be read fails closed: the user
is reported DISABLED, and a warning names the attribute and the source (never the value).
"""

import logging
from datetime import datetime

from gateway.config import AdSource, LdapSource
from gateway.directory.entry import DirectoryEntry
from gateway.directory.errors import IncompleteEntry
from gateway.directory.names import UPN_ATTRIBUTE
from gateway.engine.plan import Email, SourceUser
from gateway.engine.statusmap import MalformedStatusAttribute, source_status
from gateway.engine.types import SourceStatus

__all__ = ["to_source_user"]

log = logging.getLogger(__name__)

#: SCIM's emails[].type for directory mail addresses (RFC 7643 §4.1.2).
EMAIL_TYPE = "work"


def to_source_user(
    entry: DirectoryEntry, source: LdapSource | AdSource, now: datetime
) -> SourceUser:
    """Map one entry of `source` to a `SourceUser`.

    Args:
        entry: the entry as `Directory` returned it.
        source: the entry's source: its attribute map and status mapping.
        now: the current instant (timezone-aware), for expiry.

    Returns:
        The user: user_name from ``attributes.user_name``; emails in directory order, the
        first primary; phones as every value of the mapped attribute in order (None when no
        attribute is mapped, ``()`` when mapped but empty); groups sorted case-insensitively
        (a set upstream, sorted so the data digest does not change with the directory's
        order); every configured policy attribute as a (name, values) pair, sorted by name;
        for `ad` sources the userPrincipalName as `upn`.

    Raises:
        IncompleteEntry: the entry has no value for the user name attribute.
        ValueError: `now` is naive.
    """
    mapped = source.attributes
    user_name = entry.first(mapped.user_name)
    if not user_name:
        raise IncompleteEntry(
            f"source {source.id}: entry {entry.dn} has no {mapped.user_name} (the user name)"
        )
    emails = tuple(
        Email(value, type=EMAIL_TYPE, primary=index == 0)
        for index, value in enumerate(_unique(_values(entry, mapped.email)))
    )
    return SourceUser(
        external_id=entry.external_id,
        user_name=user_name,
        status=_status(entry, source, now),
        dn=entry.dn,
        display_name=entry.first(mapped.display_name),
        given_name=entry.first(mapped.given_name),
        family_name=entry.first(mapped.family_name),
        emails=emails,
        groups=tuple(sorted(_unique(_values(entry, mapped.groups)), key=str.casefold)),
        policy=tuple(sorted((name, _values(entry, name)) for name in set(mapped.policy))),
        sms_phones=_values(entry, mapped.sms_phone) if mapped.sms_phone else None,
        voice_phones=_values(entry, mapped.voice_phone) if mapped.voice_phone else None,
        upn=entry.first(UPN_ATTRIBUTE) if isinstance(source, AdSource) else None,
    )


def _status(entry: DirectoryEntry, source: LdapSource | AdSource, now: datetime) -> SourceStatus:
    try:
        return source_status(entry.attributes, source.status_mapping(), now)
    except MalformedStatusAttribute as exc:
        # Fail closed: a value nobody can read must not let a user in.
        log.warning(
            "source %s: status attribute %s of %s cannot be read (%s); user reported disabled",
            source.id,
            exc.attribute,
            entry.dn,
            exc.reason,
        )
        return SourceStatus.DISABLED


def _values(entry: DirectoryEntry, attribute: str | None) -> tuple[str, ...]:
    if attribute is None:
        return ()
    return tuple(v for v in entry.attributes.get(attribute.lower(), ()) if v.strip())


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
