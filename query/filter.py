"""The neutral filter on users and groups: frozen values, no SQL and no protocol.

The LDAP front translates its RFC 4515 filters, and the SCIM front its RFC 7644 §3.4.2.2
filters, into these nodes; `store.search` compiles them to SQL (its module docstring says how
each is matched there).

Logic is three-valued, as in RFC 4511 §4.5.1.7: a filter item is TRUE, FALSE or Undefined
(`Const(None)`). Every leaf is TRUE or FALSE, never Undefined, even when the attribute is
absent: `Not(Equals(display_name, "x"))` matches a user without a display name. `And(())` is
TRUE and `Or(())` FALSE (RFC 4526). A `Within` is TRUE or FALSE too: some element passes its
item, or none does.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

__all__ = [
    "And", "Attr", "Collection", "Const", "DnSuffix", "Equals", "Field", "Flag", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "Node", "Not", "Or", "Present", "Substrings",
    "Within",
]  # fmt: skip


class Field(StrEnum):
    """A user attribute a filter can test; the comments say how it is matched."""

    ID = "id"  # users.id, exact
    SOURCE = "source"  # users.source_id, exact
    EXTERNAL_ID = "external_id"  # exact
    USER_NAME = "user_name"  # users.user_name_key against value.strip().casefold()
    UPN = "upn"  # users.upn_key, likewise
    DN = "dn"  # users.dn_key against a key the caller computed (gateway.users.names.dn_key), exact
    DISPLAY_NAME = "display_name"
    GIVEN_NAME = "given_name"
    FAMILY_NAME = "family_name"
    CN = "cn"  # coalesce(display_name, user_name)
    EMAIL = "email"  # each users.emails[*].value
    GROUP = "group"  # each users.groups[*]
    POLICY = "policy"  # each users.policy[Attr.name][*]
    SMS_PHONE = "sms_phone"  # each visible phone_numbers row of kind 'sms'
    VOICE_PHONE = "voice_phone"  # likewise, kind 'voice'
    STATUS = "status"  # users.status, exact
    REASON = "reason"  # users.reason, exact
    SCIM_EXTERNAL_ID = "scim_external_id"  # a SCIM client's externalId, exact (caseExact)
    SOURCE_STATUS = "source_status"  # exact
    DISABLED_BY = "disabled_by"  # exact
    # Instants: the assertion value is an ISO 8601 date-time with an offset (RFC 3339).
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    LAST_SYNC_AT = "last_sync_at"
    LAST_AUTH_AT = "last_auth_at"
    PENDING_DELETION_SINCE = "pending_deletion_since"
    #: A string in users.scim_document at `Attr.path` (keys from top level down), folded.
    DOCUMENT = "document"
    #: Inside `Within` only: the element's member `Attr.path[0]` (a string, folded).
    ELEMENT = "element"


@dataclass(frozen=True)
class Attr:
    """A field; `name` is the policy attribute's name (exactly as stored) for POLICY only.

    Raises:
        ValueError: a POLICY without a name, or a name on any other field.
    """

    field: Field
    name: str | None = None
    #: For DOCUMENT and ELEMENT: the JSON keys to the value.
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.field is Field.POLICY) != (self.name is not None):
            raise ValueError("Attr.name is required for POLICY and allowed for nothing else")
        if (self.field in (Field.DOCUMENT, Field.ELEMENT)) != bool(self.path):
            raise ValueError("Attr.path is required for DOCUMENT and ELEMENT, and only there")


@dataclass(frozen=True)
class Equals:
    attr: Attr
    value: str


@dataclass(frozen=True)
class GreaterOrEqual:
    attr: Attr
    value: str


@dataclass(frozen=True)
class LessOrEqual:
    attr: Attr
    value: str


@dataclass(frozen=True)
class Greater:
    """Strictly greater (SCIM `gt`, RFC 7644 §3.4.2.2); LDAP has only >=."""

    attr: Attr
    value: str


@dataclass(frozen=True)
class Less:
    attr: Attr
    value: str


@dataclass(frozen=True)
class Flag:
    """A boolean member of an element (`emails[primary eq true]`), inside `Within` only:
    TRUE when the member is the JSON boolean `value`."""

    attr: Attr
    value: bool


class Collection(StrEnum):
    """A multi-valued complex attribute whose elements `Within` tests one at a time."""

    EMAILS = "emails"  # users.emails: members value, type, primary
    PHONES = "phones"  # visible phone_numbers rows: value (number), type (kind), primary
    #                    (position 0), manual
    DOCUMENT = "document"  # a JSON array in users.scim_document at `Within.path`
    MEMBERS = "members"  # groups only: group_members rows: value (user_id)


@dataclass(frozen=True)
class Within:
    """RFC 7644 §3.4.2.2 value filter `attr[item]`: TRUE when one element passes `item`,
    whose leaves name the element's members as `Attr(Field.ELEMENT, path=(member,))`."""

    collection: Collection
    item: "Node"
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Present:
    attr: Attr


@dataclass(frozen=True)
class Substrings:
    """RFC 4511 §4.5.1.7.2: `initial`, then each of `any` in order, then `final`."""

    attr: Attr
    initial: str | None
    any: tuple[str, ...]
    final: str | None


@dataclass(frozen=True)
class DnSuffix:
    """Users whose dn_key is `key` or ends with "," + `key`: a narrowing for subtree scopes.

    It may keep users outside the subtree (a key's escaped comma looks like a separator), never
    drops one inside it: the caller checks the scope exactly on what it gets back.
    """

    key: str


@dataclass(frozen=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


@dataclass(frozen=True)
class Const:
    """TRUE, FALSE, or None for Undefined (RFC 4511 §4.5.1.7, e.g. an unknown attribute)."""

    value: bool | None


Node: TypeAlias = (
    Equals
    | GreaterOrEqual
    | LessOrEqual
    | Greater
    | Less
    | Present
    | Substrings
    | DnSuffix
    | And
    | Or
    | Not
    | Const
    | Flag
    | Within
)
