"""The neutral filter (`query.filter`) compiled to SQL, and the searches that run it.

`where_clause` (users) and `group_where_clause` (groups) turn a filter into SQLAlchemy boolean
expressions in which every client value is a bound parameter; `search_users`, `search_page`
and `search_groups_page` run them. No protocol library is imported here.

The filter's three-valued logic (RFC 4511 §4.5.1.7) maps onto SQL's: Undefined is SQL NULL, so
SQL's AND, OR and NOT give LDAP's answers unchanged (NOT is pushed down to the leaves by De
Morgan's laws, which hold in three-valued logic too). Every leaf is guarded to be TRUE or
FALSE, never NULL, even when the attribute is absent.

Matching follows RFC 4517 caseIgnoreMatch for every string field except the identifiers, the
DN key and the status columns, which compare exactly. Folding is Unicode case folding
(`str.casefold`): in Python for the stored keys (user_name_key, upn_key, display_name_key,
written by `gateway.users.names.name_key`), in SQL for the other columns (see `_fold`). Instants
compare as instants. JSON (users.emails, users.scim_document) is read with each backend's JSON
functions; keys are checked against a strict pattern and bound, never spliced into SQL text.

No stored string is taken to hold NUL (U+0000): PostgreSQL text cannot hold one. An assertion
value with NUL is answered as such a store must answer it, the same on both backends (SQLite
would cut a LIKE or GLOB pattern at the NUL, widening it): an equality or a substring
match with NUL is FALSE; an ordering compares as if the value ended just before its NUL,
which in code point order is exact for every value without NUL (x >= p + NUL + r exactly when
x > p; x <= p + NUL + r exactly when x <= p). Other control characters are ordinary
characters on both backends.

A filter the store cannot answer raises ValueError with a message meant for the client (the
SCIM front answers invalidFilter): an unparsable instant, substrings on an instant, a JSON key
outside the pattern, an element member or Flag outside `Within`, a nested `Within`, a field or
collection the table does not have.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, TypeAlias, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    String,
    and_,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql.functions import Function

from query import filter as q
from store.db import FOLD_FUNCTION
from store.models import Group, GroupMember, PhoneNumber, Source, User


class _Match(Enum):
    EXACT = "exact"  # compare as stored
    KEY = "key"  # the column holds name_key(value): fold the assertion in Python only
    FOLD = "fold"  # fold both sides


#: A single-valued string column and how it matches.
_Column: TypeAlias = tuple[Any, _Match]

_USER_COLUMNS: dict[q.Field, _Column] = {
    q.Field.ID: (User.id, _Match.EXACT),
    q.Field.SOURCE: (User.source_id, _Match.EXACT),
    q.Field.EXTERNAL_ID: (User.external_id, _Match.EXACT),
    q.Field.DN: (User.dn_key, _Match.EXACT),
    q.Field.STATUS: (User.status, _Match.EXACT),
    q.Field.REASON: (User.reason, _Match.EXACT),
    q.Field.SCIM_EXTERNAL_ID: (User.scim_external_id, _Match.EXACT),
    q.Field.SOURCE_STATUS: (User.source_status, _Match.EXACT),
    q.Field.DISABLED_BY: (User.disabled_by, _Match.EXACT),
    q.Field.USER_NAME: (User.user_name_key, _Match.KEY),
    q.Field.UPN: (User.upn_key, _Match.KEY),
    q.Field.DISPLAY_NAME: (User.display_name, _Match.FOLD),
    q.Field.GIVEN_NAME: (User.given_name, _Match.FOLD),
    q.Field.FAMILY_NAME: (User.family_name, _Match.FOLD),
    q.Field.CN: (func.coalesce(User.display_name, User.user_name), _Match.FOLD),
}
_USER_INSTANTS: dict[q.Field, Any] = {
    q.Field.CREATED_AT: User.created_at,
    q.Field.UPDATED_AT: User.updated_at,
    q.Field.LAST_SYNC_AT: User.last_sync_at,
    q.Field.LAST_AUTH_AT: User.last_auth_at,
    q.Field.PENDING_DELETION_SINCE: User.pending_deletion_since,
}
_GROUP_COLUMNS: dict[q.Field, _Column] = {
    q.Field.ID: (Group.id, _Match.EXACT),
    q.Field.SOURCE: (Group.source_id, _Match.EXACT),
    q.Field.DISPLAY_NAME: (Group.display_name_key, _Match.KEY),
    q.Field.SCIM_EXTERNAL_ID: (Group.scim_external_id, _Match.EXACT),
}
_GROUP_INSTANTS: dict[q.Field, Any] = {
    q.Field.CREATED_AT: Group.created_at,
    q.Field.UPDATED_AT: Group.updated_at,
}
_PHONE_KINDS = {q.Field.SMS_PHONE: "sms", q.Field.VOICE_PHONE: "voice"}

# LIKE patterns escape their wildcards with this character, and it with itself.
_LIKE_ESCAPE = "/"
NUL = "\x00"

#: A JSON key: an RFC 7643 §2.1 ATTRNAME, a schema URN such as
#: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", or "$ref" (§2.3.7). Nothing in
#: it is special inside a quoted SQLite JSON path label, so the path (a bound parameter
#: itself) means exactly these keys.
_JSON_KEY = re.compile(r"\$?[A-Za-z0-9_][A-Za-z0-9_:.\-]*", re.ASCII)

#: RFC 3339 §5.6 date-time; "t", "z" and a space for "T" as its §5.6 notes allow. A value
#: without an offset is taken as UTC, as xsd:dateTime (RFC 7643 §2.3.5) allows one.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)

#: Builds the test of one value (a column, or one element of a multi-valued field).
_Test: TypeAlias = Callable[[ColumnElement[str], _Match], ColumnElement[bool]]
#: A comparison operator: column, assertion -> condition.
_Operator: TypeAlias = Callable[[Any, Any], ColumnElement[bool]]

_Row = TypeVar("_Row", User, Group)


def where_clause(node: q.Node, dialect: str) -> ColumnElement[bool]:
    """Compile a filter to a boolean expression on `users`, client values as bound parameters.

    Args:
        node: the filter.
        dialect: "sqlite" or "postgresql" (`Store.dialect`).

    Returns:
        An expression that is TRUE, FALSE or NULL (Undefined) for each user.

    Raises:
        ValueError: an unknown dialect, or a filter the store cannot answer (module docstring).
    """
    return _Compiler(_checked(dialect)).compile(node)


def group_where_clause(node: q.Node, dialect: str) -> ColumnElement[bool]:
    """Compile a filter to a boolean expression on `groups`, like `where_clause`.

    Groups have the fields ID, SOURCE, DISPLAY_NAME (display_name_key, folded like USER_NAME),
    SCIM_EXTERNAL_ID, CREATED_AT and UPDATED_AT, and the collection MEMBERS, whose one member
    `value` is a member's user id (exact).

    Raises:
        ValueError: an unknown dialect, any other field or collection, or a filter the store
            cannot answer (module docstring).
    """
    return _GroupCompiler(_checked(dialect)).compile(node)


def search_users(
    session: Session, where: ColumnElement[bool], *, after_id: str | None, limit: int
) -> list[User]:
    """The users `where` is TRUE for, ordered by id, with their phones loaded.

    Keyset paging: the page starts after `after_id` (the last id of the previous page) and
    holds at most `limit` users.
    """
    query = select(User).where(where).options(selectinload(User.phones))
    if after_id is not None:
        query = query.where(User.id > after_id)
    return list(session.scalars(query.order_by(User.id).limit(limit)))


def count_users(session: Session, where: ColumnElement[bool]) -> int:
    """How many users `where` is TRUE for."""
    return session.scalar(select(func.count()).select_from(User).where(where)) or 0


def search_page(
    session: Session,
    where: ColumnElement[bool],
    *,
    order: q.Attr | None,
    descending: bool,
    offset: int,
    limit: int,
    phones: bool = True,
) -> tuple[int, list[User]]:
    """One page of the users `where` is TRUE for (SCIM sorting and paging, RFC 7644 §3.4.2.3,
    §3.4.2.4), with their phones loaded unless `phones` is False (then reading them costs a
    query per user: for callers that show none).

    Args:
        session: the caller's session.
        where: from `where_clause`.
        order: the sort attribute (sortBy), or None for the id order. Orderable: ID, SOURCE,
            EXTERNAL_ID, USER_NAME, DISPLAY_NAME, GIVEN_NAME, FAMILY_NAME, SCIM_EXTERNAL_ID,
            STATUS, REASON, SOURCE_STATUS, DISABLED_BY, the instants, and DOCUMENT strings.
        descending: sortOrder=descending; it applies to `order` only, never to the id that
            breaks ties.
        offset: how many matches to skip (SCIM startIndex - 1).
        limit: the page size (SCIM count); 0 asks for the total only.

    Returns:
        The total number of matches and the page.

    Raises:
        ValueError: an attribute that cannot be sorted by, a negative offset or limit.
    """
    key = None if order is None else _Compiler(_dialect(session)).sort_key(order)
    load = (selectinload(User.phones),) if phones else ()
    return _page(session, User, where, key, descending, offset, limit, load)


def search_groups_page(
    session: Session,
    where: ColumnElement[bool],
    *,
    order: q.Attr | None,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[Group]]:
    """One page of the groups `where` (from `group_where_clause`) is TRUE for, like
    `search_page`. Orderable: ID, DISPLAY_NAME, SCIM_EXTERNAL_ID, CREATED_AT, UPDATED_AT.

    Raises:
        ValueError: an attribute that cannot be sorted by, a negative offset or limit.
    """
    key = None if order is None else _GroupCompiler(_dialect(session)).sort_key(order)
    return _page(session, Group, where, key, descending, offset, limit, ())


def _checked(dialect: str) -> str:
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"no filter compilation for the {dialect!r} dialect")
    return dialect


def _dialect(session: Session) -> str:
    return _checked(session.get_bind().dialect.name)


def _page(
    session: Session,
    entity: type[_Row],
    where: ColumnElement[bool],
    key: ColumnElement[Any] | None,
    descending: bool,
    offset: int,
    limit: int,
    load: tuple[ORMOption, ...],
) -> tuple[int, list[_Row]]:
    """The page as one query with LIMIT/OFFSET (plus the loads), and the total as one COUNT,
    unless the first page holds every match (the usual `userName eq "x"`: one query)."""
    if offset < 0 or limit < 0:
        raise ValueError("the offset and the limit of a page cannot be negative")
    if limit == 0:
        return _count(session, entity, where), []
    query = select(entity).where(where).options(*load)
    if key is not None:
        # RFC 7644 §3.4.2.3: "For all attribute types, if there is no data for the specified
        # 'sortBy' value, they are sorted via the 'sortOrder' parameter, i.e., they are ordered
        # last if ascending and first if descending." No data: NULL, and "" (`sort_key`).
        query = query.order_by(key.desc().nulls_first() if descending else key.asc().nulls_last())
    # The id makes the order total, so pages neither repeat nor skip a match.
    query = query.order_by(entity.id).offset(offset).limit(limit)
    page = list(session.scalars(query))
    if offset == 0 and len(page) < limit:
        return len(page), page
    return _count(session, entity, where), page


def _count(session: Session, entity: type[_Row], where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(entity).where(where)) or 0


class _Elements(ABC):
    """One element of a collection, as the leaves inside a `Within` see it.

    A member the element does not have is absent: a string test on it is FALSE, and so is a
    Flag (RFC 7644 §3.4.2.2, a filter on an absent attribute does not match).
    """

    @abstractmethod
    def exists(self, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """TRUE when some element makes `condition` TRUE, else FALSE."""

    @abstractmethod
    def string(self, member: str) -> _Column | None:
        """The member as a string (NULL where an element has no string there) and how it
        matches; None when no element can have it as a string."""

    @abstractmethod
    def flag(self, member: str, value: bool) -> ColumnElement[bool]:
        """TRUE when the member is the boolean `value`, else FALSE (never NULL)."""

    @abstractmethod
    def is_boolean(self, member: str) -> ColumnElement[bool]:
        """TRUE when the member is a boolean, either one, else FALSE."""


class _RowElements(_Elements):
    """Rows of a child table, correlated to the enclosing row by `where`; their members are
    fixed columns."""

    def __init__(
        self,
        where: tuple[ColumnElement[bool], ...],
        strings: Mapping[str, _Column],
        flags: Mapping[str, tuple[ColumnElement[bool], ColumnElement[bool]]],
    ) -> None:
        self.where = where
        self.strings = strings
        self.flags = flags  # member -> (when it is true, when it is false), both NOT NULL

    def exists(self, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(*self.where, condition)

    def string(self, member: str) -> _Column | None:
        return self.strings.get(member)

    def flag(self, member: str, value: bool) -> ColumnElement[bool]:
        if member not in self.flags:
            return false()
        when_true, when_false = self.flags[member]
        return when_true if value else when_false

    def is_boolean(self, member: str) -> ColumnElement[bool]:
        return true() if member in self.flags else false()


class _JsonElements(_Elements):
    """The elements of a JSON array (`document` at `keys`) that are objects: a member is the
    value at a key of the object, bound as a parameter. Only a JSON string is a string value
    and only true or false a boolean: anything else there counts as absent."""

    def __init__(self, sqlite: bool, document: Any, keys: tuple[str, ...]) -> None:
        self.sqlite = sqlite
        self.guard: tuple[ColumnElement[bool], ...] = ()
        if sqlite:
            if keys:
                where = literal(_json_path(keys), String)
                function = func.json_each(document, where)
                # json_each walks an object's members, or yields a scalar: arrays only.
                self.guard = (func.json_type(document, where) == "array",)
            else:
                function = func.json_each(document)
                self.guard = (func.json_type(document) == "array",)
            self.elements = function.table_valued(
                column("value", String), column("type", String)
            ).alias()
        else:
            array = _pg_walk(document, keys)
            # json_array_elements raises on anything but an array: give it an empty one.
            array = case(
                (func.json_typeof(array) == "array", array),
                else_=func.json_build_array(type_=JSON),
            )
            self.elements = (
                func.json_array_elements(array).table_valued(column("value", JSON)).alias()
            )

    def exists(self, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return select(literal(1)).select_from(self.elements).where(*self.guard, condition).exists()

    def _type(self, member: str) -> ColumnElement[str]:
        """The member's JSON type, NULL when it is absent or the element is no object.

        SQLite: 'text', 'true', 'false', ... (json_type; booleans read back as 1 and 0, so
        their type is the only way to tell them from numbers). PostgreSQL: json_typeof's
        'string', 'boolean', ...
        """
        value = self.elements.c.value
        if self.sqlite:
            where = literal(_json_path((member,)), String)
            # CASE first: json_type on a string element (json_each yields it unquoted) would
            # fail the whole statement with "malformed JSON".
            return case((self.elements.c.type == "object", func.json_type(value, where)))
        node = value.op("->", return_type=JSON)(literal(member, String))
        return func.json_typeof(node, type_=String)

    def string(self, member: str) -> _Column | None:
        value = self.elements.c.value
        if self.sqlite:
            where = literal(_json_path((member,)), String)
            text: ColumnElement[str] = func.json_extract(value, where, type_=String)
            string = case((self._type(member) == "text", text))
        else:
            text = value.op("->>", return_type=String)(literal(member, String))
            string = case((self._type(member) == "string", text))
        return string, _Match.FOLD

    def flag(self, member: str, value: bool) -> ColumnElement[bool]:
        kind = func.coalesce(self._type(member), "")
        if self.sqlite:
            return kind == ("true" if value else "false")
        text = self.elements.c.value.op("->>", return_type=String)(literal(member, String))
        return and_(kind == "boolean", func.coalesce(text, "") == ("true" if value else "false"))

    def is_boolean(self, member: str) -> ColumnElement[bool]:
        kind = func.coalesce(self._type(member), "")
        return kind.in_(("true", "false")) if self.sqlite else kind == "boolean"


class _Compiler:
    """Compiles a filter on `users`; `_GroupCompiler` reuses it with the tables of `groups`.

    Inside a `Within`, a fresh compiler carries the collection's `element`, to which the
    ELEMENT leaves and Flags refer.
    """

    table: ClassVar[str] = "users"
    columns: ClassVar[Mapping[q.Field, _Column]] = _USER_COLUMNS
    instants: ClassVar[Mapping[q.Field, Any]] = _USER_INSTANTS
    entity: ClassVar[type[User] | type[Group]] = User
    #: Fields with a (source_id, field) index (models.User.__table_args__).
    source_keyed: ClassVar[frozenset[q.Field]] = frozenset(
        (q.Field.USER_NAME, q.Field.UPN, q.Field.DN, q.Field.EXTERNAL_ID, q.Field.SCIM_EXTERNAL_ID)
    )
    orderable: ClassVar[frozenset[q.Field]] = frozenset(
        (
            q.Field.ID,
            q.Field.SOURCE,
            q.Field.EXTERNAL_ID,
            q.Field.USER_NAME,
            q.Field.DISPLAY_NAME,
            q.Field.GIVEN_NAME,
            q.Field.FAMILY_NAME,
            q.Field.SCIM_EXTERNAL_ID,
            q.Field.STATUS,
            q.Field.REASON,
            q.Field.SOURCE_STATUS,
            q.Field.DISABLED_BY,
            *_USER_INSTANTS,
            q.Field.DOCUMENT,
        )
    )

    def __init__(self, dialect: str, element: _Elements | None = None) -> None:
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        self.element = element

    def compile(self, node: q.Node) -> ColumnElement[bool]:
        match node:
            case q.And(items):
                return and_(true(), *(self.compile(item) for item in items))
            case q.Or(items):
                return or_(false(), *(self.compile(item) for item in items))
            case q.Not(item):
                return self._negated(item)
            case q.Const(truth):
                if truth is None:
                    return cast(null(), Boolean)
                return true() if truth else false()
            case q.DnSuffix(key):
                return self._dn_suffix(key)
            case q.Equals(attr, text):
                return self._by_source(attr, self._compare(attr, text, _eq, ordered=False))
            case q.Greater(attr, text):
                return self._compare(attr, text, _gt, ordered=True)
            case q.GreaterOrEqual(attr, text):
                return self._compare(attr, text, _ge, ordered=True)
            case q.Less(attr, text):
                return self._compare(attr, text, _lt, ordered=True)
            case q.LessOrEqual(attr, text):
                return self._compare(attr, text, _le, ordered=True)
            case q.Present(attr):
                return self._present(attr)
            case q.Substrings(attr, initial, any_, final):
                if attr.field in self.instants:
                    raise ValueError(
                        f"{attr.field.value} is a date-time: compare it with eq, gt, ge, lt, le"
                        " or pr, not with a substring"
                    )
                return self._leaf(attr, lambda v, m: self._substrings(v, m, initial, any_, final))
            case q.Flag(attr, value):
                return self._element_of(attr).flag(_member(attr), value)
            case q.Within():
                return self._within(node)
        raise TypeError(f"not a filter node: {node!r}")

    def _negated(self, node: q.Node) -> ColumnElement[bool]:
        """NOT `node`, pushed down to the leaves: De Morgan's laws and double negation hold in
        three-valued logic too, and SQLite's parser overflows its stack on NOT ( ... ) nested
        a few dozen deep ("parser stack overflow")."""
        match node:
            case q.Not(item):
                return self.compile(item)
            case q.And(items):
                return or_(false(), *(self._negated(item) for item in items))
            case q.Or(items):
                return and_(true(), *(self._negated(item) for item in items))
            case q.Const(truth):
                return self.compile(q.Const(None if truth is None else not truth))
        return not_(self.compile(node))

    def sort_key(self, attr: q.Attr) -> ColumnElement[Any]:
        """The ORDER BY expression for `attr`: NULL where there is no value (`_page`).

        Strings sort in code point order on both backends; caseIgnore ones folded, caseExact
        ones (the ids, RFC 7643 §3.1; the status columns) as stored: "sortOrder MUST sort
        according to the attribute type" (RFC 7644 §3.4.2.3).

        Raises:
            ValueError: `attr` is not orderable.
        """
        field = attr.field
        if field not in self.orderable:
            raise ValueError(f"{self.table} cannot be sorted by {field.value}")
        if field in self.instants:
            instant: ColumnElement[Any] = self.instants[field]
            return instant
        if field is q.Field.DOCUMENT:
            value = self._fold(self._document_string(attr.path))
        else:
            column_, match = self.columns[field]
            value = self._fold(column_) if match is _Match.FOLD else column_
        # "" is no value, as for Present: it sorts with the missing ones.
        return self._ordered(func.nullif(value, "", type_=String))

    # -- leaves ---------------------------------------------------------------------------------

    def _compare(
        self, attr: q.Attr, text: str, op: _Operator, *, ordered: bool
    ) -> ColumnElement[bool]:
        instant = self.instants.get(attr.field)
        if instant is not None:
            return and_(instant.is_not(None), op(instant, _instant(text)))
        return self._leaf(attr, lambda v, m: self._compare_string(v, m, text, op, ordered))

    def _compare_string(
        self, value: ColumnElement[str], match: _Match, text: str, op: _Operator, ordered: bool
    ) -> ColumnElement[bool]:
        assertion = self._assertion(text, match)
        if NUL in assertion:
            # No stored value holds NUL (module docstring): nothing equals the assertion, and
            # in code point order a value without NUL sorts after it exactly when it sorts
            # after the part before the NUL.
            if op not in _BEFORE_NUL:
                return false()
            op, assertion = _BEFORE_NUL[op], assertion[: assertion.index(NUL)]
        return op(self._ordered(value) if ordered else value, assertion)

    def _by_source(self, attr: q.Attr, leaf: ColumnElement[bool]) -> ColumnElement[bool]:
        """An equality on a column indexed as (source_id, column), with the always-TRUE
        `source_id IN (SELECT id FROM sources)` (source_id is a NOT NULL foreign key): a
        filter such as SCIM's `userName eq "x"` names no source, and this lets both backends
        seek the index once per source (a handful) instead of scanning the table."""
        if attr.field not in self.source_keyed:
            return leaf
        return and_(self.entity.source_id.in_(select(Source.id)), leaf)

    def _present(self, attr: q.Attr) -> ColumnElement[bool]:
        instant = self.instants.get(attr.field)
        if instant is not None:
            present: ColumnElement[bool] = instant.is_not(None)
            return present
        # An empty string is no value: DirectoryString is 1*UTF8 (RFC 4517 §3.3.6), and SCIM's
        # "pr" wants a non-empty value (RFC 7644 §3.4.2.2).
        present = self._leaf(attr, lambda v, _m: v != "")
        if attr.field is q.Field.ELEMENT:
            # A boolean member has a value too: `emails[primary pr]`.
            return or_(present, self._element_of(attr).is_boolean(_member(attr)))
        return present

    def _leaf(self, attr: q.Attr, test: _Test) -> ColumnElement[bool]:
        """Apply `test` to the attribute's value, or to each of its values (EXISTS).

        The IS NOT NULL guard makes the leaf FALSE, not NULL, when the value is absent.
        """
        field = attr.field
        if field is q.Field.ELEMENT:
            found = self._element_of(attr).string(_member(attr))
            if found is None:
                return false()
        elif field in self.columns:
            found = self.columns[field]
        elif field in self.instants:  # pragma: no cover - every node handles instants first
            raise TypeError(f"no string test for the instant {field.value}")
        else:
            return self._other_leaf(attr, test)
        value, match = found
        return and_(
            value.is_not(None), test(self._fold(value) if match is _Match.FOLD else value, match)
        )

    def _other_leaf(self, attr: q.Attr, test: _Test) -> ColumnElement[bool]:
        """The fields other than single-valued columns: the document and multi-valued ones."""
        if attr.field is q.Field.DOCUMENT:
            value = self._document_string(attr.path)
            return and_(value.is_not(None), test(self._fold(value), _Match.FOLD))
        return self._any_element(attr, test)

    def _dn_suffix(self, key: str) -> ColumnElement[bool]:
        if NUL in key:
            return false()  # no stored DN holds NUL; SQLite would cut the pattern at it
        pattern = "%," + _escape_like(key)
        dn = User.dn_key
        return and_(dn.is_not(None), or_(dn == key, dn.like(pattern, escape=_LIKE_ESCAPE)))

    def _document_string(self, path: tuple[str, ...]) -> ColumnElement[str]:
        """The JSON string at `path` in users.scim_document; NULL for anything else there."""
        keys = _json_keys(path)
        document = User.scim_document
        if self.sqlite:
            where = literal(_json_path(keys), String)
            text = func.json_extract(document, where, type_=String)
            return case((func.json_type(document, where) == "text", text))
        parent = _pg_walk(document, keys[:-1])
        last = literal(keys[-1], String)
        node = parent.op("->", return_type=JSON)(last)
        return case(
            (func.json_typeof(node) == "string", parent.op("->>", return_type=String)(last))
        )

    # -- value filters (RFC 7644 §3.4.2.2 valuePath) --------------------------------------------

    def _within(self, node: q.Within) -> ColumnElement[bool]:
        if self.element is not None:
            # valFilter is built of attrExp, never of another valuePath (RFC 7644 §3.4.2.2).
            raise ValueError("a value filter cannot contain another value filter")
        if (node.collection is q.Collection.DOCUMENT) != bool(node.path):
            raise ValueError("Within.path is required for Collection.DOCUMENT, and only there")
        element = self._elements(node.collection, node.path)
        inner = type(self)(self.dialect, element)
        return element.exists(inner.compile(node.item))

    def _elements(self, collection: q.Collection, path: tuple[str, ...]) -> _Elements:
        if collection is q.Collection.EMAILS:
            return _JsonElements(self.sqlite, User.emails, ())
        if collection is q.Collection.DOCUMENT:
            return _JsonElements(self.sqlite, User.scim_document, _json_keys(path))
        if collection is q.Collection.PHONES:
            position = PhoneNumber.position
            return _RowElements(
                # An empty number is an administrator's tombstone: hidden (models.PhoneNumber).
                where=(PhoneNumber.user_id == User.id, PhoneNumber.number != ""),
                strings={
                    "value": (PhoneNumber.number, _Match.FOLD),
                    "type": (PhoneNumber.kind, _Match.EXACT),
                },
                flags={
                    "primary": (position == 0, position != 0),
                    "manual": (PhoneNumber.manual == true(), PhoneNumber.manual == false()),
                },
            )
        raise ValueError(f"{self.table} have no {collection.value} to filter on")

    def _element_of(self, attr: q.Attr) -> _Elements:
        if attr.field is not q.Field.ELEMENT:
            raise ValueError("a Flag tests an element member (Field.ELEMENT) only")
        if self.element is None:
            raise ValueError("an element member can be tested inside a value filter only")
        return self.element

    def _any_element(self, attr: q.Attr, test: _Test) -> ColumnElement[bool]:
        """EXISTS one value of a multi-valued field that passes `test` (compared folded)."""
        field = attr.field
        if field in _PHONE_KINDS:
            # An empty number is an administrator's tombstone: hidden (models.PhoneNumber).
            number = PhoneNumber.number
            return exists().where(
                PhoneNumber.user_id == User.id,
                PhoneNumber.kind == _PHONE_KINDS[field],
                number != "",
                test(self._fold(number), _Match.FOLD),
            )
        if field is q.Field.EMAIL:
            elements = self._json_elements(User.emails, as_text=False)
            value: ColumnElement[str] = elements.c.value["value"].as_string()
        elif field is q.Field.GROUP:
            elements = self._json_elements(User.groups, as_text=True)
            value = elements.c.value
        elif field is q.Field.POLICY and attr.name is not None:
            return self._any_policy_value(attr.name, test)
        else:  # pragma: no cover - every Field is handled above
            raise TypeError(f"no compilation for {attr!r}")
        return (
            select(literal(1))
            .select_from(elements)
            .where(value.is_not(None), test(self._fold(value), _Match.FOLD))
            .exists()
        )

    def _json_elements(self, array: Any, *, as_text: bool) -> Any:
        """The elements of a JSON array column as a table with one `value` column, correlated
        to the enclosing `users` row (the columns are `json`, not `jsonb`, on PostgreSQL)."""
        if self.sqlite:
            function = func.json_each(array)
        elif as_text:
            function = func.json_array_elements_text(array)
        else:
            function = func.json_array_elements(array)
        return function.table_valued(column("value", String if as_text else JSON)).alias()

    def _any_policy_value(self, name: str, test: _Test) -> ColumnElement[bool]:
        """EXISTS a value in users.policy[name]; the name is a bound parameter, never a path.

        Values are lists as written by gateway.users.records; a scalar counts as a one-value list
        rather than failing the whole search (json_array_elements raises on a scalar).
        """
        if self.sqlite:
            keys = func.json_each(User.policy).table_valued("key", "value", "type").alias()
            values = func.json_each(
                case((keys.c.type == "array", keys.c.value), else_=func.json_array(keys.c.value))
            )
            items = values.table_valued(column("value", String)).alias()
            value: ColumnElement[str] = items.c.value
            return (
                select(literal(1))
                .select_from(keys.join(items, true()))
                .where(keys.c.key == name, value.is_not(None), test(self._fold(value), _Match.FOLD))
                .exists()
            )
        entry = User.policy.op("->", return_type=JSON)(literal(name, String))
        array = case(
            (func.json_typeof(entry) == "array", entry), else_=func.json_build_array(entry)
        )
        elements = self._json_elements(array, as_text=True)
        value = elements.c.value
        return (
            select(literal(1))
            .select_from(elements)
            .where(value.is_not(None), test(self._fold(value), _Match.FOLD))
            .exists()
        )

    # -- folding and comparison -----------------------------------------------------------------

    def _fold(self, value: Any) -> ColumnElement[str]:
        """Case-fold a column in SQL.

        SQLite: `idgate_fold`, Python's str.casefold registered by store.db. PostgreSQL has no
        casefold before version 18: lower() under the database's LC_CTYPE. It differs from
        casefold where folding is not lowering ("Straße" does not match "STRASSE"), and under
        a "C" ctype it folds ASCII only; the assertion is lowered with str.lower to match.
        """
        if self.sqlite:
            return Function(FOLD_FUNCTION, value, type_=String)
        return func.lower(value, type_=String)

    def _fold_text(self, text: str) -> str:
        return text.casefold() if self.sqlite else text.lower()

    def _assertion(self, value: str, match: _Match) -> str:
        if match is _Match.KEY:
            return value.strip().casefold()
        if match is _Match.FOLD:
            return self._fold_text(value)
        return value

    def _ordered(self, value: ColumnElement[str]) -> ColumnElement[str]:
        """Code point order on both backends: an approximation of caseIgnoreOrderingMatch
        (RFC 4517 §4.2.12) on folded values. PostgreSQL would otherwise use its collation."""
        return value if self.sqlite else value.collate("C")

    def _substrings(
        self,
        value: ColumnElement[str],
        match: _Match,
        initial: str | None,
        any_: tuple[str, ...],
        final: str | None,
    ) -> ColumnElement[bool]:
        """RFC 4511 §4.5.1.7.2 as one pattern: pieces in order, not overlapping."""
        pieces = [initial or "", *any_, final or ""]
        if any(NUL in piece for piece in pieces):
            # No stored value holds NUL, and SQLite would read the pattern only up to it.
            return false()
        if match is _Match.EXACT and self.sqlite:
            # SQLite's LIKE ignores ASCII case; GLOB is its case-sensitive twin.
            return value.op("GLOB", return_type=Boolean)("*".join(map(_escape_glob, pieces)))
        if match is not _Match.EXACT:
            pieces = [
                piece.casefold() if match is _Match.KEY else self._fold_text(piece)
                for piece in pieces
            ]
        pattern = "%".join(_escape_like(piece) for piece in pieces)
        return value.like(pattern, escape=_LIKE_ESCAPE)


def _escape_like(text: str) -> str:
    for char in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, _LIKE_ESCAPE + char)
    return text


def _escape_glob(text: str) -> str:
    # A one-character set is the only quoting GLOB has: "[*]" is a literal star.
    return "".join(f"[{char}]" if char in "*?[" else char for char in text)


class _GroupCompiler(_Compiler):
    """Compiles a filter on `groups` (group_where_clause)."""

    table = "groups"
    columns = _GROUP_COLUMNS
    instants = _GROUP_INSTANTS
    entity = Group
    source_keyed = frozenset((q.Field.DISPLAY_NAME,))  # unique (source_id, display_name_key)
    orderable = frozenset(
        (
            q.Field.ID,
            q.Field.DISPLAY_NAME,
            q.Field.SCIM_EXTERNAL_ID,
            q.Field.CREATED_AT,
            q.Field.UPDATED_AT,
        )
    )

    def _other_leaf(self, attr: q.Attr, test: _Test) -> ColumnElement[bool]:
        raise ValueError(f"groups have no {attr.field.value} to filter on")

    def _dn_suffix(self, key: str) -> ColumnElement[bool]:
        raise ValueError("groups have no DN to filter on")

    def _elements(self, collection: q.Collection, path: tuple[str, ...]) -> _Elements:
        if collection is not q.Collection.MEMBERS:
            raise ValueError(f"groups have no {collection.value} to filter on")
        return _RowElements(
            where=(GroupMember.group_id == Group.id,),
            strings={"value": (GroupMember.user_id, _Match.EXACT)},
            flags={},
        )


def _eq(value: Any, assertion: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = value == assertion
    return result


def _gt(value: Any, assertion: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = value > assertion
    return result


def _ge(value: Any, assertion: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = value >= assertion
    return result


def _lt(value: Any, assertion: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = value < assertion
    return result


def _le(value: Any, assertion: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = value <= assertion
    return result


#: An ordering against a value with NUL, as the ordering against the part before its NUL.
_BEFORE_NUL: dict[_Operator, _Operator] = {_ge: _gt, _gt: _gt, _le: _le, _lt: _le}


def _instant(text: str) -> datetime:
    """An assertion on an instant as an aware UTC datetime.

    Raises:
        ValueError: `text` is not an RFC 3339 date-time (§5.6), or not one Python can hold.
    """
    problem = f"{text!r} is not an RFC 3339 date-time such as 2026-11-22T12:00:00Z"
    if _DATE_TIME.fullmatch(text) is None:
        raise ValueError(problem)
    normal = text.upper()
    if normal.endswith("Z"):
        normal = normal[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(normal)
        # astimezone overflows at the ends of datetime's range (0001-01-01T00:00:00+01:00).
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(problem) from exc


def _json_keys(path: tuple[str, ...]) -> tuple[str, ...]:
    """`path`, once every key is known to match `_JSON_KEY`.

    Raises:
        ValueError: an empty path, or a key outside the pattern.
    """
    if not path:
        raise ValueError("a JSON path needs at least one key")
    for key in path:
        if _JSON_KEY.fullmatch(key) is None:
            raise ValueError(
                f"{key!r} is not an attribute name: letters, digits, '-', '_', ':' and '.'"
                " (RFC 7643 §2.1, or a schema URN), after an optional '$'"
            )
    return path


def _member(attr: q.Attr) -> str:
    """The member an ELEMENT attribute names: one key (a sub-attribute has no sub-attributes,
    RFC 7643 §2.3.8)."""
    if len(attr.path) != 1:
        raise ValueError("an element member is one key, e.g. Attr(Field.ELEMENT, path=('type',))")
    return _json_keys(attr.path)[0]


def _json_path(keys: tuple[str, ...]) -> str:
    """A SQLite JSON path of quoted labels: "$."urn:...:2.0:User"."department"" (keys checked
    by `_json_keys`, and the path itself bound as a parameter)."""
    return "$" + "".join(f'."{key}"' for key in keys)


def _pg_walk(document: Any, keys: tuple[str, ...]) -> Any:
    """PostgreSQL `document -> key -> ...`, each key a bound parameter (json, not jsonb); NULL
    as soon as a step finds no object with that key."""
    for key in keys:
        document = document.op("->", return_type=JSON)(literal(key, String))
    return document
