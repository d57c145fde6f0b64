"""One user entry as the connector hands it out, decoded from ldap3's raw search response.

Values arrive as the octets the directory sent. Text attributes are decoded as UTF-8 (RFC 4517
§3.1); AD's objectGUID, the one binary attribute read, becomes its canonical UUID text. A value
that is not UTF-8 is dropped with a warning naming the attribute, never guessed at. Password
attributes are dropped whatever was requested.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["OBJECT_GUID", "SECRET_ATTRIBUTES", "DirectoryEntry", "decode_entry", "guid_text"]

log = logging.getLogger(__name__)

OBJECT_GUID = "objectguid"

#: Attributes that hold passwords or their hashes: never requested, never kept (lower case).
SECRET_ATTRIBUTES = frozenset(
    {
        "userpassword",
        "unicodepwd",
        "authpassword",
        "supplementalcredentials",
        "ntpwdhistory",
        "lmpwdhistory",
        "dbcspwd",
        "sambantpassword",
        "sambalmpassword",
    }
)


@dataclass(frozen=True)
class DirectoryEntry:
    """A user entry of a directory source.

    Attributes:
        dn: the DN the directory returned (the one to bind with).
        external_id: the directory's immutable id: entryUUID (or the configured id attribute)
            as text; objectGUID as its canonical UUID string (``str(uuid.UUID(bytes_le=raw))``).
        attributes: lower-cased attribute name → values as text, in the order sent.
    """

    dn: str
    external_id: str
    attributes: Mapping[str, tuple[str, ...]]

    def first(self, attribute: str) -> str | None:
        """The first value of an attribute (name in any case), or None."""
        values = self.attributes.get(attribute.lower(), ())
        return values[0] if values else None


def guid_text(raw: bytes) -> str | None:
    """An objectGUID value (16 octets, MS-DTYP §2.3.4.2 little-endian fields) as UUID text."""
    if len(raw) != 16:
        return None
    return str(uuid.UUID(bytes_le=raw))


def decode_entry(
    dn: str, raw_attributes: Mapping[str, Sequence[bytes]], id_attribute: str, source_id: str
) -> DirectoryEntry | None:
    """Decode one search result entry.

    Returns:
        The entry, or None (with a warning) when it lacks a single usable id value: ids are
        never invented.
    """
    attributes: dict[str, list[str]] = {}
    for name, values in raw_attributes.items():
        # `member;range=0-1499` was merged by ldap3's auto_range; options are not kept.
        key = name.lower()
        if key in SECRET_ATTRIBUTES:
            continue
        decoded = attributes.setdefault(key, [])
        for raw in values:
            text = guid_text(bytes(raw)) if key == OBJECT_GUID else _utf8(bytes(raw))
            if text is None:
                log.warning(
                    "source %s: a value of %s on %s cannot be decoded; dropped", source_id, key, dn
                )
                continue
            decoded.append(text)
    ids = attributes.get(id_attribute.lower(), [])
    if len(ids) != 1 or not ids[0]:
        log.warning(
            "source %s: entry %s has %s values of the id attribute %s; skipped",
            source_id,
            dn,
            "no" if not ids else "several",
            id_attribute,
        )
        return None
    return DirectoryEntry(
        dn=dn,
        external_id=ids[0],
        attributes={name: tuple(values) for name, values in attributes.items()},
    )


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
