"""User records as LDAP entries, and the attribute selection of RFC 4511 §4.5.1.8.

Pure functions: a record and its source's schema in, `(type, [values])` pairs out. No entry
ever carries `userPassword` or any other secret: the record has none to give.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from gateway.users.records import UserView
from gateway.users.tree import Container
from ldapproxy.schema import (
    ENTRY_DN,
    ENTRY_UUID,
    PENDING_DELETION,
    SOURCE,
    STATUS,
    STATUS_REASON,
    SourceSchema,
)

Attributes = list[tuple[str, list[str]]]


def generalized_time(moment: datetime) -> str:
    """RFC 4517 §3.3.13, in UTC."""
    return moment.strftime("%Y%m%d%H%M%SZ")


def user_to_entry(user: UserView, dn: str, schema: SourceSchema) -> tuple[Attributes, Attributes]:
    """The user attributes and the operational attributes of `user`'s entry at `dn`."""
    attributes: Attributes = [("objectClass", list(schema.object_classes))]
    attributes.append((schema.login, [user.user_name]))
    if schema.login.casefold() != "uid":
        attributes.append(("uid", [user.user_name]))
    attributes.append(("cn", [user.display_name or user.user_name]))
    optional = {
        "displayName": user.display_name,
        "givenName": user.given_name,
        "sn": user.family_name,
    }
    attributes.extend((name, [value]) for name, value in optional.items() if value)
    lists = {
        "mail": [str(e["value"]) for e in user.emails if e.get("value")],
        schema.sms_phone: [p.number for p in user.sms_phones if p.number],
        schema.voice_phone: [p.number for p in user.voice_phones if p.number],
        "memberOf": list(user.groups),
    }
    for name in schema.policy:
        lists[name] = [str(v) for v in user.policy.get(name, ())]
    attributes.extend((name, values) for name, values in lists.items() if values)

    state = user.state
    operational: Attributes = [
        (ENTRY_UUID, [user.id]),
        (ENTRY_DN, [dn]),
        (STATUS, [state.status.value]),
        (SOURCE, [user.source_id]),
    ]
    if state.reason is not None:
        operational.append((STATUS_REASON, [state.reason.value]))
    if state.pending_deletion_since is not None:
        operational.append((PENDING_DELETION, [generalized_time(state.pending_deletion_since)]))
    return attributes, operational


def container_entry(container: Container) -> tuple[Attributes, Attributes]:
    """A naming context or source OU: its RDN attribute and a structural class."""
    user = list(container_values(container).items())
    return user, [(ENTRY_DN, [container.dn])]


def container_values(container: Container) -> dict[str, list[str]]:
    attribute, _, value = container.parts[0].partition("=")
    classes = {"dc": "domain", "ou": "organizationalUnit", "o": "organization"}
    structural = classes.get(attribute, "extensibleObject")
    return {"objectClass": ["top", structural], attribute: [value]}


def select(
    user: Attributes, operational: Attributes, requested: Sequence[str], types_only: bool
) -> Attributes:
    """RFC 4511 §4.5.1.8 (and RFC 3673 for "+"): which attributes a search returns.

    No names, or "*": every user attribute; "+": every operational one; "1.1" alone: none.
    Other names select attributes case-insensitively; names the entry lacks are ignored.
    """
    names = {name.casefold() for name in requested}
    all_user = not names or "*" in names
    all_operational = "+" in names
    chosen: Attributes = []
    for pool, everything in ((user, all_user), (operational, all_operational)):
        for name, values in pool:
            if everything or name.casefold() in names:
                chosen.append((name, [] if types_only else values))
    return chosen


def encoded(attributes: Iterable[tuple[str, list[str]]]) -> list[tuple[bytes, list[bytes]]]:
    return [(name.encode(), [v.encode() for v in values]) for name, values in attributes]
