"""A neutral filter on users, and its compilation to SQL.

The LDAP front (and later the SCIM front) translates its protocol's filter (an RFC 4515
string, a SCIM filter) into the nodes below; `where_clause` turns them into a SQLAlchemy
boolean expression in which every client value is a bound parameter, and `search_users` runs
it. No protocol library is imported here.

Logic is three-valued, as in RFC 4511 §4.5.1.7: a filter item is TRUE, FALSE or Undefined.
Undefined is SQL NULL, so SQL's AND, OR and NOT give LDAP's answers unchanged. Every leaf is
TRUE or FALSE, never NULL, even when the attribute is absent: `Not(Equals(display_name, "x"))`
matches a user without a display name. `And(())` is TRUE and `Or(())` FALSE (RFC 4526).

Matching follows RFC 4517 caseIgnoreMatch for every string field except the identifiers, the
DN key and the status columns, which compare exactly. Folding is Unicode case folding
(`str.casefold`): in Python for the stored keys (user_name_key, upn_key, written by
`gateway.names.name_key`), in SQL for the other columns (see `_fold`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, TypeAlias

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
from sqlalchemy.sql.functions import Function

from store.db import FOLD_FUNCTION
from store.models import PhoneNumber, User


class Field(StrEnum):
    """A user attribute a filter can test; the comments say how it is matched."""

    ID = "id"  # users.id, exact
    SOURCE = "source"  # users.source_id, exact
    EXTERNAL_ID = "external_id"  # exact
    USER_NAME = "user_name"  # users.user_name_key against value.strip().casefold()
    UPN = "upn"  # users.upn_key, likewise
    DN = "dn"  # users.dn_key against a key the caller computed (gateway.names.dn_key), exact
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


@dataclass(frozen=True)
class Attr:
    """A field; `name` is the policy attribute's name (exactly as stored) for POLICY only.

    Raises:
        ValueError: a POLICY without a name, or a name on any other field.
    """

    field: Field
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.field is Field.POLICY) != (self.name is not None):
            raise ValueError("Attr.name is required for POLICY and allowed for nothing else")


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
    Equals | GreaterOrEqual | LessOrEqual | Present | Substrings | DnSuffix | And | Or | Not | Const
)


class _Match(Enum):
    EXACT = "exact"  # compare as stored
    KEY = "key"  # the column holds name_key(value): fold the assertion in Python only
    FOLD = "fold"  # fold both sides


_EXACT_COLUMNS: dict[Field, Any] = {
    Field.ID: User.id,
    Field.SOURCE: User.source_id,
    Field.EXTERNAL_ID: User.external_id,
    Field.DN: User.dn_key,
    Field.STATUS: User.status,
    Field.REASON: User.reason,
}
_KEY_COLUMNS: dict[Field, Any] = {Field.USER_NAME: User.user_name_key, Field.UPN: User.upn_key}
_FOLD_COLUMNS: dict[Field, Any] = {
    Field.DISPLAY_NAME: User.display_name,
    Field.GIVEN_NAME: User.given_name,
    Field.FAMILY_NAME: User.family_name,
    Field.CN: func.coalesce(User.display_name, User.user_name),
}
_PHONE_KINDS = {Field.SMS_PHONE: "sms", Field.VOICE_PHONE: "voice"}

# LIKE patterns escape their wildcards with this character, and it with itself.
_LIKE_ESCAPE = "/"

#: Builds the test of one value (a column, or one element of a multi-valued field).
_Test: TypeAlias = Callable[[ColumnElement[str], _Match], ColumnElement[bool]]


def where_clause(node: Node, dialect: str) -> ColumnElement[bool]:
    """Compile a filter to a boolean expression on `users`, client values as bound parameters.

    Args:
        node: the filter.
        dialect: "sqlite" or "postgresql" (`Store.dialect`).

    Returns:
        An expression that is TRUE, FALSE or NULL (Undefined) for each user.

    Raises:
        ValueError: an unknown dialect.
    """
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"no filter compilation for the {dialect!r} dialect")
    return _Compiler(dialect).compile(node)


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


class _Compiler:
    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def compile(self, node: Node) -> ColumnElement[bool]:
        match node:
            case And(items):
                return and_(true(), *(self.compile(item) for item in items))
            case Or(items):
                return or_(false(), *(self.compile(item) for item in items))
            case Not(item):
                return not_(self.compile(item))
            case Const(truth):
                if truth is None:
                    return cast(null(), Boolean)
                return true() if truth else false()
            case DnSuffix(key):
                pattern = "%," + _escape_like(key)
                dn = User.dn_key
                return and_(dn.is_not(None), or_(dn == key, dn.like(pattern, escape=_LIKE_ESCAPE)))
            case Equals(attr, text):
                return self._leaf(attr, lambda v, m: v == self._assertion(text, m))
            case GreaterOrEqual(attr, text):
                return self._leaf(attr, lambda v, m: self._ordered(v) >= self._assertion(text, m))
            case LessOrEqual(attr, text):
                return self._leaf(attr, lambda v, m: self._ordered(v) <= self._assertion(text, m))
            case Present(attr):
                # An empty string is no value: DirectoryString is 1*UTF8 (RFC 4517 §3.3.6).
                return self._leaf(attr, lambda v, _m: v != "")
            case Substrings(attr, initial, any_, final):
                return self._leaf(attr, lambda v, m: self._substrings(v, m, initial, any_, final))
        raise TypeError(f"not a filter node: {node!r}")

    # -- leaves ---------------------------------------------------------------------------------

    def _leaf(self, attr: Attr, test: _Test) -> ColumnElement[bool]:
        """Apply `test` to the attribute's value, or to each of its values (EXISTS).

        The IS NOT NULL guard makes the leaf FALSE, not NULL, when the value is absent.
        """
        field = attr.field
        if field in _EXACT_COLUMNS:
            value = _EXACT_COLUMNS[field]
            return and_(value.is_not(None), test(value, _Match.EXACT))
        if field in _KEY_COLUMNS:
            value = _KEY_COLUMNS[field]
            return and_(value.is_not(None), test(value, _Match.KEY))
        if field in _FOLD_COLUMNS:
            value = _FOLD_COLUMNS[field]
            return and_(value.is_not(None), test(self._fold(value), _Match.FOLD))
        return self._any_element(attr, test)

    def _any_element(self, attr: Attr, test: _Test) -> ColumnElement[bool]:
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
        if field is Field.EMAIL:
            elements = self._json_elements(User.emails, as_text=False)
            value: ColumnElement[str] = elements.c.value["value"].as_string()
        elif field is Field.GROUP:
            elements = self._json_elements(User.groups, as_text=True)
            value = elements.c.value
        elif field is Field.POLICY and attr.name is not None:
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

        Values are lists as written by gateway.records; a scalar counts as a one-value list
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
