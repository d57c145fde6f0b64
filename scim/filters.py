"""SCIM filters and sort keys (RFC 7644 §3.4.2.2, §3.4.2.3) as neutral filters (`query.filter`).

scim2-models parses a filter into a tree; this module walks it through an explicit allow-list
of attributes (`USER_ATTRIBUTES`, `ADMIN_ATTRIBUTES`, `GROUP_ATTRIBUTES`). Each entry says
where the store keeps the attribute: a column, a string in the client's document, or a
multi-valued complex attribute whose elements a value filter tests one by one. An attribute
outside the list, or an operator its type does not have, is an `invalidFilter` error: the
filter is never evaluated in Python, and never matches more than it says.

Attribute names are case-insensitive (RFC 7644 §3.4.2.2); the document keeps the names as
scim2-models dumps them, which is what `_DOCUMENT_STRINGS` spells.

A value is data whatever it holds: one with a NUL character reaches the store, which finds
no match for it (no stored string holds NUL), so `not (...)` of it matches everything.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from scim2_models import InvalidFilterException, InvalidValueException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)
from scim2_models.path import Not as NotExpr
from scim2_models.path import Present as PresentExpr

from query import filter as q
from scim.schemas import GATEWAY_SCHEMA

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: The deepest nesting translated; deeper filters are refused before any recursion limit.
MAX_DEPTH = 50
#: The most comparisons one filter may hold (SQLite refuses expression trees deeper than 1000;
#: no provisioning client sends more than a handful).
MAX_TERMS = 200


#: RFC 7644 §3.4.2.2 separates a filter's parts with SP, and a value is a JSON string, which
#: escapes U+0000-U+001F (RFC 8259 §7): nowhere does a filter hold one raw. scim2-models'
#: lexer skips tabs and line breaks as spaces; a filter that holds one is refused here.
#: (U+007F is a character a JSON string may hold, and outside one no token takes it.)
_RAW_CONTROL = re.compile(r"[\x00-\x1f]")


class Kind(Enum):
    STRING = "string"  # compared folded (caseExact false) or exactly, as the store's field does
    INSTANT = "instant"  # RFC 3339 date-time
    ACTIVE = "active"  # the `active` boolean: the source's status is `enabled`


@dataclass(frozen=True)
class Column:
    """A single-valued attribute the store keeps in a column (or a document string)."""

    attr: q.Attr
    kind: Kind = Kind.STRING


@dataclass(frozen=True)
class Elements:
    """A multi-valued complex attribute: its members, and which of them are booleans."""

    collection: q.Collection
    members: Mapping[str, str]  # lower-cased name -> the member's own spelling
    booleans: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()

    def member(self, name: str) -> str:
        try:
            return self.members[name.casefold()]
        except KeyError:
            raise InvalidFilterException(detail=f"{name!r} is not filterable here") from None


Entry = Column | Elements


def _document(*path: str) -> Column:
    return Column(q.Attr(q.Field.DOCUMENT, path=path))


def _document_array(name: str, members: tuple[str, ...], booleans: tuple[str, ...]) -> Elements:
    spelled = {m.casefold(): m for m in (*members, *booleans)}
    return Elements(q.Collection.DOCUMENT, spelled, frozenset(booleans), (name,))


_DOCUMENT_STRINGS = (
    "nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone",
)  # fmt: skip
_NAME_PARTS = ("formatted", "middleName", "honorificPrefix", "honorificSuffix")
_ENTERPRISE_STRINGS = ("employeeNumber", "costCenter", "organization", "division", "department")
_DOCUMENT_ARRAYS = {
    "phoneNumbers": (("value", "type", "display"), ("primary",)),
    "ims": (("value", "type", "display"), ("primary",)),
    "photos": (("value", "type", "display"), ("primary",)),
    "addresses": (
        ("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"),
        ("primary",),
    ),
    "entitlements": (("value", "type", "display"), ("primary",)),
    "roles": (("value", "type", "display"), ("primary",)),
    "x509Certificates": (("value", "type", "display"), ("primary",)),
}

_EMAILS = Elements(
    q.Collection.EMAILS,
    {"value": "value", "type": "type", "primary": "primary"},
    frozenset({"primary"}),
)

#: The user attributes a source's client may filter and sort on: (schema, attr, sub) -> entry.
USER_ATTRIBUTES: dict[tuple[str, str, str | None], Entry] = {
    (CORE_USER, "id", None): Column(q.Attr(q.Field.ID)),
    (CORE_USER, "username", None): Column(q.Attr(q.Field.USER_NAME)),
    (CORE_USER, "externalid", None): Column(q.Attr(q.Field.SCIM_EXTERNAL_ID)),
    (CORE_USER, "displayname", None): Column(q.Attr(q.Field.DISPLAY_NAME)),
    (CORE_USER, "name", "givenname"): Column(q.Attr(q.Field.GIVEN_NAME)),
    (CORE_USER, "name", "familyname"): Column(q.Attr(q.Field.FAMILY_NAME)),
    (CORE_USER, "active", None): Column(q.Attr(q.Field.SOURCE_STATUS), Kind.ACTIVE),
    (CORE_USER, "meta", "created"): Column(q.Attr(q.Field.CREATED_AT), Kind.INSTANT),
    (CORE_USER, "meta", "lastmodified"): Column(q.Attr(q.Field.UPDATED_AT), Kind.INSTANT),
    (CORE_USER, "emails", None): _EMAILS,
    **{(CORE_USER, n.casefold(), None): _document(n) for n in _DOCUMENT_STRINGS},
    **{(CORE_USER, "name", n.casefold()): _document("name", n) for n in _NAME_PARTS},
    **{
        (CORE_USER, n.casefold(), None): _document_array(n, *spec)
        for n, spec in _DOCUMENT_ARRAYS.items()
    },
    **{
        (ENTERPRISE.casefold(), n.casefold(), None): _document(ENTERPRISE, n)
        for n in _ENTERPRISE_STRINGS
    },
    (ENTERPRISE.casefold(), "manager", "value"): _document(ENTERPRISE, "manager", "value"),
    (ENTERPRISE.casefold(), "manager", None): _document(ENTERPRISE, "manager", "value"),
}

_GATEWAY = GATEWAY_SCHEMA.casefold()
_PHONES = Elements(
    q.Collection.PHONES,
    {"value": "value", "type": "type", "primary": "primary", "manual": "manual"},
    frozenset({"primary", "manual"}),
)

#: The admin view's attributes: the users' own (where the store has them for every source)
#: and the gateway extension's.
ADMIN_ATTRIBUTES: dict[tuple[str, str, str | None], Entry] = {
    **USER_ATTRIBUTES,
    # Every source's users: `active` is the gateway's own status here, not the source's.
    (CORE_USER, "active", None): Column(q.Attr(q.Field.STATUS), Kind.ACTIVE),
    (_GATEWAY, "source", None): Column(q.Attr(q.Field.SOURCE)),
    (_GATEWAY, "status", None): Column(q.Attr(q.Field.STATUS)),
    (_GATEWAY, "disabledby", None): Column(q.Attr(q.Field.DISABLED_BY)),
    (_GATEWAY, "reason", None): Column(q.Attr(q.Field.REASON)),
    (_GATEWAY, "pendingdeletionsince", None): Column(
        q.Attr(q.Field.PENDING_DELETION_SINCE), Kind.INSTANT
    ),
    (_GATEWAY, "lastsync", None): Column(q.Attr(q.Field.LAST_SYNC_AT), Kind.INSTANT),
    (_GATEWAY, "lastauthentication", None): Column(q.Attr(q.Field.LAST_AUTH_AT), Kind.INSTANT),
    (_GATEWAY, "phones", None): _PHONES,
}

GROUP_ATTRIBUTES: dict[tuple[str, str, str | None], Entry] = {
    (CORE_GROUP, "id", None): Column(q.Attr(q.Field.ID)),
    (CORE_GROUP, "displayname", None): Column(q.Attr(q.Field.DISPLAY_NAME)),
    (CORE_GROUP, "externalid", None): Column(q.Attr(q.Field.SCIM_EXTERNAL_ID)),
    (CORE_GROUP, "meta", "created"): Column(q.Attr(q.Field.CREATED_AT), Kind.INSTANT),
    (CORE_GROUP, "meta", "lastmodified"): Column(q.Attr(q.Field.UPDATED_AT), Kind.INSTANT),
    (CORE_GROUP, "members", None): Elements(q.Collection.MEMBERS, {"value": "value"}),
}


class Translator:
    """Translates filters and sort keys for one endpoint's allow-list."""

    def __init__(self, attributes: Mapping[tuple[str, str, str | None], Entry], core: str) -> None:
        self._attributes = attributes
        self._core = core

    def filter(self, scim_filter: ScimFilter[Any]) -> q.Node:
        """The store's filter for a parsed SCIM filter (its text, and its tree in `.ast`).

        Raises:
            InvalidFilterException: a raw control character in the text, an attribute outside
                the allow-list, an operator or value its type does not take, a filter nested
                deeper than MAX_DEPTH or holding more than MAX_TERMS comparisons.
        """
        if _RAW_CONTROL.search(scim_filter):
            raise InvalidFilterException(detail="a filter holds no raw control character")
        node = scim_filter.ast
        if _terms(node, 0) > MAX_TERMS:
            raise InvalidFilterException(detail=f"a filter holds at most {MAX_TERMS} comparisons")
        return self._node(node, 0)

    def sort(self, path: str) -> q.Attr:
        """The store attribute a `sortBy` names (RFC 7644 §3.4.2.3).

        Raises:
            InvalidValueException: a multi-valued or unknown attribute.
        """
        uri, _, rest = path.rpartition(":")
        attr, _, sub = rest.partition(".")
        try:
            entry = self._entry(AttrPath(attr=attr, sub_attr=sub or None, uri=uri or None))
        except (InvalidFilterException, ValueError):  # ValueError: not an attribute's name
            entry = None
        if not isinstance(entry, Column):
            raise InvalidValueException(detail=f"cannot sort by {path!r}")
        return entry.attr

    # -- the tree ---------------------------------------------------------------------------------

    def _node(self, node: FilterNode, depth: int) -> q.Node:
        if depth > MAX_DEPTH:
            raise InvalidFilterException(detail=f"the filter nests deeper than {MAX_DEPTH} levels")
        match node:
            case LogicalExpr(op=op, terms=terms):
                items = tuple(self._node(term, depth + 1) for term in terms)
                return q.And(items) if op is LogicalOperator.and_ else q.Or(items)
            case NotExpr(expr=expr):
                return q.Not(self._node(expr, depth + 1))
            case PresentExpr(attr_path=path):
                entry = self._entry(path)
                if isinstance(entry, Elements):
                    member = entry.member(path.sub_attr or "value")
                    return q.Within(entry.collection, _present(member, entry), entry.path)
                return q.Present(entry.attr)
            case Comparison(attr_path=path, op=op, value=value):
                entry = self._entry(path)
                if isinstance(entry, Elements):
                    # `emails co "x"` and `emails.type eq "work"` test one element each
                    # (RFC 7644 §3.4.2.2: a complex multi-valued attribute compares its value).
                    member = entry.member(path.sub_attr or "value")
                    leaf = _element_comparison(entry, member, op, value)
                    return q.Within(entry.collection, leaf, entry.path)
                return _comparison(entry, op, value)
            case ValuePath(attr_path=path, val_filter=inner):
                entry = self._entry(path)
                if not isinstance(entry, Elements):
                    raise InvalidFilterException(detail=f"{path} is not multi-valued")
                return q.Within(
                    entry.collection, self._element(entry, inner, depth + 1), entry.path
                )
        raise InvalidFilterException(detail="unsupported filter expression")

    def _element(self, elements: Elements, node: FilterNode, depth: int) -> q.Node:
        """A value filter's expression (`emails[type eq "work" and value co "@"]`)."""
        if depth > MAX_DEPTH:
            raise InvalidFilterException(detail=f"the filter nests deeper than {MAX_DEPTH} levels")
        match node:
            case LogicalExpr(op=op, terms=terms):
                items = tuple(self._element(elements, term, depth + 1) for term in terms)
                return q.And(items) if op is LogicalOperator.and_ else q.Or(items)
            case NotExpr(expr=expr):
                return q.Not(self._element(elements, expr, depth + 1))
            case PresentExpr(attr_path=path) if path.uri is None and path.sub_attr is None:
                return _present(elements.member(path.attr), elements)
            case Comparison(attr_path=path, op=op, value=value) if (
                path.uri is None and path.sub_attr is None
            ):
                return _element_comparison(elements, elements.member(path.attr), op, value)
        raise InvalidFilterException(detail="a value filter compares the element's own members")

    def _entry(self, path: AttrPath) -> Entry:
        schema = (path.uri or self._core).casefold()
        sub = path.sub_attr.casefold() if path.sub_attr else None
        entry = self._attributes.get((schema, path.attr.casefold(), sub))
        if entry is None and sub is not None:
            # `emails.type`: a member of a multi-valued attribute, tested element by element.
            whole = self._attributes.get((schema, path.attr.casefold(), None))
            entry = whole if isinstance(whole, Elements) else None
        if entry is None:
            raise InvalidFilterException(detail=f"{path} is not a filterable attribute")
        return entry


def _terms(node: FilterNode, depth: int) -> int:
    """How many comparisons a filter holds (depth-bounded, so it never recurses too far)."""
    if depth > MAX_DEPTH:
        raise InvalidFilterException(detail=f"the filter nests deeper than {MAX_DEPTH} levels")
    match node:
        case LogicalExpr(terms=terms):
            return sum(_terms(term, depth + 1) for term in terms)
        case NotExpr(expr=expr):
            return _terms(expr, depth + 1)
        case ValuePath(val_filter=inner):
            return _terms(inner, depth + 1)
    return 1


def _present(member: str, elements: Elements) -> q.Node:
    attr = q.Attr(q.Field.ELEMENT, path=(member,))
    if member in elements.booleans:
        return q.Or((q.Flag(attr, True), q.Flag(attr, False)))
    return q.Present(attr)


_STRING_OPS: dict[CompareOperator, type[q.Greater | q.GreaterOrEqual | q.Less | q.LessOrEqual]] = {
    CompareOperator.gt: q.Greater,
    CompareOperator.ge: q.GreaterOrEqual,
    CompareOperator.lt: q.Less,
    CompareOperator.le: q.LessOrEqual,
}


def _comparison(entry: Column, op: CompareOperator, value: Any) -> q.Node:
    if entry.kind is Kind.ACTIVE:
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail="active compares with eq or ne to true or false")
        enabled = q.Equals(
            entry.attr, "enabled" if entry.attr.field is q.Field.SOURCE_STATUS else "active"
        )
        return enabled if (value is True) == (op is CompareOperator.eq) else q.Not(enabled)
    return _string_comparison(entry.attr, op, value, instant=entry.kind is Kind.INSTANT)


def _element_comparison(elements: Elements, member: str, op: CompareOperator, value: Any) -> q.Node:
    attr = q.Attr(q.Field.ELEMENT, path=(member,))
    if member in elements.booleans:
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail=f"{member} compares with eq or ne to a boolean")
        return q.Flag(attr, value) if op is CompareOperator.eq else q.Not(q.Flag(attr, value))
    return _string_comparison(attr, op, value, instant=False)


def _string_comparison(attr: q.Attr, op: CompareOperator, value: Any, *, instant: bool) -> q.Node:
    if value is None:
        # RFC 7644 §3.4.2.2 has `pr` for presence; `eq null` is read as its negation.
        if op is CompareOperator.eq:
            return q.Not(q.Present(attr))
        if op is CompareOperator.ne:
            return q.Present(attr)
        raise InvalidFilterException(detail=f"{op.value} does not compare with null")
    if not isinstance(value, str):
        raise InvalidFilterException(detail="this attribute compares with a string")
    if op is CompareOperator.eq:
        return q.Equals(attr, value)
    if op is CompareOperator.ne:
        return q.Not(q.Equals(attr, value))
    if op in _STRING_OPS:
        return _STRING_OPS[op](attr, value)
    if instant:
        raise InvalidFilterException(detail=f"{op.value} does not apply to a date-time")
    if op is CompareOperator.co:
        return q.Substrings(attr, None, (value,), None)
    if op is CompareOperator.sw:
        return q.Substrings(attr, value, (), None)
    if op is CompareOperator.ew:
        return q.Substrings(attr, None, (), value)
    raise InvalidFilterException(detail=f"unsupported operator {op.value}")


USERS = Translator(USER_ATTRIBUTES, CORE_USER)
ADMIN_USERS = Translator(ADMIN_ATTRIBUTES, CORE_USER)
GROUPS = Translator(GROUP_ATTRIBUTES, CORE_GROUP)
