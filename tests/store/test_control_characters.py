"""Assertion values with control characters (U+0000-U+001F, U+007F) in every comparison the
store compiles, on SQLite and PostgreSQL: both give the answer of the model below, which is
Python's own string semantics on the stored values (code point order, `str.find`).

No stored value holds NUL (PostgreSQL text cannot): a value with NUL equals nothing and is
found in nothing, and an ordering against it is exact (module docstring of store.search).
Before the fix, SQLite cut LIKE patterns at NUL (`(uid=*\\00)` matched everyone) and
PostgreSQL failed the whole query.
"""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import case, select

from gateway.users.names import name_key
from query.filter import (
    Attr,
    DnSuffix,
    Equals,
    Field,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Node,
    Not,
    Substrings,
)
from store.db import Store
from store.models import User
from store.search import search_users, where_clause
from store.users import ensure_sources
from tests.store.test_search import NOW, make_user

CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]

#: (id, user name, display name, email): control characters other than NUL are storable.
USERS = [
    ("u1", "alice", "Alice", "alice@corp.example"),
    ("u2", "bob", None, "bob@corp.example"),
    ("u3", "a\x01b", "A\x01B", "a\x01b@corp.example"),
    ("u4", "x\x1fy", "X\x1fY", "x\x1fy@corp.example"),
    ("u5", "tab\tin", "Tab\tIn", "tab\tin@corp.example"),
    ("u6", "del\x7f", "Del\x7f", "del\x7f@corp.example"),
]

#: Field -> the values a user has for it, as the store compares them (keys and folds).
FIELDS: dict[Field, Callable[[tuple[str, str, str | None, str], str], list[str]]] = {
    Field.USER_NAME: lambda user, _: [name_key(user[1])],
    Field.DISPLAY_NAME: lambda user, _: [] if user[2] is None else [user[2].casefold()],
    Field.EXTERNAL_ID: lambda user, _: [f"ext-{user[1]}"],
    Field.EMAIL: lambda user, _: [user[3].casefold()],
}


def assertion(field: Field, text: str) -> str:
    """The assertion as the store compares it (store.search `_assertion`), ASCII only here."""
    if field is Field.USER_NAME:
        return text.strip().casefold()
    if field is Field.EXTERNAL_ID:
        return text
    return text.casefold()


def substring_match(value: str, initial: str, any_: Sequence[str], final: str) -> bool:
    """RFC 4511 §4.5.1.7.2 on one value: pieces in order, not overlapping."""
    if not value.startswith(initial):
        return False
    position = len(initial)
    for piece in any_:
        found = value.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return value.endswith(final) and len(value) - len(final) >= position


def model(node: Node, user: tuple[str, str, str | None, str]) -> bool:
    if isinstance(node, Not):
        return not model(node.item, user)
    assert not isinstance(node, DnSuffix)
    field = node.attr.field  # type: ignore[union-attr]
    values = FIELDS[field](user, "")
    if isinstance(node, Substrings):
        fold = str.casefold if field is not Field.EXTERNAL_ID else str
        pieces = [fold(p) for p in (node.initial or "", *node.any, node.final or "")]
        return any(substring_match(v, pieces[0], pieces[1:-1], pieces[-1]) for v in values)
    text = assertion(field, node.value)  # type: ignore[union-attr]
    compare: Callable[[str, str], bool] = {
        Equals: str.__eq__,
        GreaterOrEqual: str.__ge__,
        LessOrEqual: str.__le__,
        Greater: str.__gt__,
        Less: str.__lt__,
    }[type(node)]  # type: ignore[index]
    return any(compare(v, text) for v in values)


def nodes(field: Field, char: str) -> list[Node]:
    attr = Attr(field)
    near = ["a" + char, "a" + char + "b", char, "alice" + char, char + "bob", "x" + char + "y"]
    if field is Field.EXTERNAL_ID:
        near = [f"ext-{v}" for v in near]
    found: list[Node] = []
    for value in near:
        found += [
            Equals(attr, value),
            GreaterOrEqual(attr, value),
            LessOrEqual(attr, value),
            Greater(attr, value),
            Less(attr, value),
            Substrings(attr, value, (), None),
            Substrings(attr, None, (value,), None),
            Substrings(attr, None, (), value),
            Substrings(attr, None, (char,), value[-1:]),
        ]
    return found + [Not(node) for node in found]


@pytest.fixture
def seeded(store: Store) -> Store:
    with store.writing() as session:
        ensure_sources(session, [("corp", "ldap")], NOW)
        session.flush()
        for user_id, user_name, display_name, email in USERS:
            session.add(
                make_user(
                    user_id,
                    user_name,
                    external_id=f"ext-{user_name}",
                    display_name=display_name,
                    emails=[{"value": email, "type": "work", "primary": True}],
                )
            )
    return store


def found(store: Store, node: Node) -> list[str]:
    with store.reading() as session:
        where = where_clause(node, store.dialect)
        return [u.id for u in search_users(session, where, after_id=None, limit=100)]


def found_each(store: Store, filters: Sequence[Node]) -> list[list[str]]:
    """`found` of each filter, in one query: a column per filter, 1 where it is TRUE."""
    columns = [case((where_clause(node, store.dialect), 1), else_=0) for node in filters]
    with store.reading() as session:
        rows = session.execute(select(User.id, *columns).order_by(User.id)).all()
    return [[row[0] for row in rows if row[1 + n]] for n in range(len(filters))]


@pytest.mark.parametrize("field", list(FIELDS), ids=lambda f: f.value)
def test_every_comparison_with_a_control_character_answers_as_the_model(
    seeded: Store, field: Field
) -> None:
    wrong: list[Any] = []
    # An EXISTS per comparison makes the multi-valued field slow: a sample of it.
    for char in CONTROLS if field is not Field.EMAIL else ["\x00", "\x01", "\t", "\x1f", "\x7f"]:
        filters = nodes(field, char)
        for node, got in zip(filters, found_each(seeded, filters), strict=True):
            expected = [u[0] for u in USERS if model(node, u)]
            if got != expected:
                wrong.append((node, got, expected))
    assert wrong == [], f"{len(wrong)} wrong answers, the first: {wrong[:3]}"


def test_nul_matches_nothing_and_its_negation_everything(seeded: Store) -> None:
    everyone = [u[0] for u in USERS]
    name = Attr(Field.USER_NAME)
    assert found(seeded, Substrings(name, None, (), "\x00")) == []  # (uid=*\00)
    assert found(seeded, Substrings(name, "alice\x00", (), None)) == []  # (uid=alice\00*)
    assert found(seeded, Equals(name, "alice\x00")) == []
    assert found(seeded, Not(Equals(name, "a\x00"))) == everyone  # (!(uid=a\00))
    # In code point order, x >= "b" + NUL exactly when x > "b": bob, tab, x\x1fy, del.
    assert found(seeded, GreaterOrEqual(name, "b\x00")) == ["u2", "u4", "u5", "u6"]
    assert found(seeded, LessOrEqual(name, "bob\x00zzz")) == ["u1", "u2", "u3"]
    assert found(seeded, DnSuffix("ou=people\x00,dc=corp")) == []
