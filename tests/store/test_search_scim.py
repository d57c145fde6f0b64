"""The SCIM side of the neutral filter (store.search), on SQLite and PostgreSQL: the SCIM
columns, instants, the stored SCIM document, value filters (`Within`), sorting and paging
(RFC 7644 §3.4.2.2-§3.4.2.4), and groups.

Three-valued logic as RFC 4511 §4.5.1.7: every leaf is TRUE or FALSE, so NOT over an absent
value matches.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.users.names import name_key
from query.filter import (
    And,
    Attr,
    Collection,
    Const,
    DnSuffix,
    Equals,
    Field,
    Flag,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Node,
    Not,
    Or,
    Present,
    Substrings,
    Within,
)
from store import users as queries
from store.models import Group, GroupMember, PhoneNumber, User
from store.search import group_where_clause, search_groups_page, search_page, where_clause

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).astimezone(UTC)


def make_user(user_id: str, user_name: str, **columns: Any) -> User:
    phones = columns.pop("phones", [])
    values: dict[str, Any] = {
        "source_id": "hr",
        "external_id": f"ext-{user_id}",
        "emails": [],
        "groups": [],
        "policy": {},
        "source_status": "enabled",
        "source_digest": "0" * 64,
        "status": "active",
        "status_changed_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        **columns,
    }
    user = User(id=user_id, user_name=user_name, user_name_key=name_key(user_name), **values)
    user.phones = [
        PhoneNumber(kind=kind, position=position, number=number, manual=manual)
        for kind, position, number, manual in phones
    ]
    return user


def sample_users() -> list[User]:
    return [
        make_user(
            "s1",
            "alice",
            display_name="Zed",
            scim_external_id="EXT-1",
            created_at=at("2026-01-01T00:00:00+00:00"),
            updated_at=at("2026-06-01T12:00:00.250000+00:00"),
            last_sync_at=at("2026-11-01T08:00:00+00:00"),
            scim_document={
                "userName": "alice",
                "title": "Engineer",
                "active": True,
                ENTERPRISE: {
                    "department": "Sales",
                    "employeeNumber": "701",
                    "manager": {"value": "s2", "$ref": "../Users/s2"},
                },
                "addresses": [
                    {"type": "work", "locality": "Paris", "primary": True},
                    "a stray string",
                    5,
                    {"type": "home", "locality": "Lyon", "primary": False},
                ],
            },
            emails=[
                {"value": "Alice@Example.com", "type": "work", "primary": True},
                {"value": "a@home.example", "type": "home", "primary": False},
            ],
            phones=[
                ("sms", 0, "+1 555 0100", False),
                ("sms", 1, "+1 555 0101", True),
                ("voice", 0, "", True),  # a tombstone: hidden
            ],
        ),
        make_user(
            "s2",
            "Bob",
            display_name="adam",
            scim_external_id="ext-1",
            source_status="disabled",
            status="disabled",
            disabled_by="source",
            reason="source_disabled",
            created_at=at("2026-03-01T00:00:00+00:00"),
            last_auth_at=at("2026-11-20T10:00:00+00:00"),
            pending_deletion_since=at("2026-11-21T00:00:00+00:00"),
            scim_document={
                "title": "engineer",
                ENTERPRISE: {"department": "R&D", "costCenter": 42},
                "addresses": {"type": "work", "primary": True},  # not an array
            },
            emails=[{"value": "bob@example.com", "type": "work"}],
            phones=[("voice", 0, "+1 555 0200", False)],
        ),
        make_user(
            "s3",
            "carol",
            source_id="corp",
            display_name="Åsa",
            created_at=at("2025-12-31T12:00:00+00:00"),
            scim_document={"title": "", "addresses": []},
            emails=[{"value": "carol@example.com", "primary": "true"}],  # a string, not a flag
        ),
        make_user(
            "s4",
            "dave",
            source_id="corp",
            display_name="",
            scim_document={"title": 7, "a.b": "flat", "a": {"b": "nested"}},
        ),
        make_user("s5", "eve", source_id="corp"),  # no document, nothing optional
    ]


ALL = ["s1", "s2", "s3", "s4", "s5"]
_dialects = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


@pytest.fixture
def users(store):
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "ldap"), ("hr", "scim")], NOW)
        session.flush()
        session.add_all(sample_users())
    return store


def find(store, node: Node) -> list[str]:
    with store.reading() as session:
        total, page = search_page(
            session,
            where_clause(node, store.dialect),
            order=None,
            descending=False,
            offset=0,
            limit=100,
        )
    ids = [user.id for user in page]
    assert total == len(ids)
    return ids


def attr(field: Field, *path: str) -> Attr:
    return Attr(field, path=path)


def doc(*path: str) -> Attr:
    return Attr(Field.DOCUMENT, path=path)


def el(member: str) -> Attr:
    return Attr(Field.ELEMENT, path=(member,))


def eq(target: Field | Attr, value: str) -> Equals:
    return Equals(target if isinstance(target, Attr) else Attr(target), value)


def has(target: Field | Attr) -> Present:
    return Present(target if isinstance(target, Attr) else Attr(target))


def emails(item: Node) -> Within:
    return Within(Collection.EMAILS, item)


def phones(item: Node) -> Within:
    return Within(Collection.PHONES, item)


def addresses(item: Node) -> Within:
    return Within(Collection.DOCUMENT, item, path=("addresses",))


# -- exact SCIM columns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.SCIM_EXTERNAL_ID, "EXT-1"), ["s1"]),  # externalId is caseExact (RFC 7643 §3.1)
        (eq(Field.SCIM_EXTERNAL_ID, "ext-1"), ["s2"]),
        (eq(Field.SCIM_EXTERNAL_ID, "Ext-1"), []),
        (eq(Field.SOURCE_STATUS, "disabled"), ["s2"]),
        (eq(Field.SOURCE_STATUS, "DISABLED"), []),
        (eq(Field.DISABLED_BY, "source"), ["s2"]),
        (has(Field.SCIM_EXTERNAL_ID), ["s1", "s2"]),
        (has(Field.DISABLED_BY), ["s2"]),
        (Not(eq(Field.DISABLED_BY, "source")), ["s1", "s3", "s4", "s5"]),  # NULL: FALSE, not NULL
        (Not(eq(Field.SCIM_EXTERNAL_ID, "EXT-1")), ["s2", "s3", "s4", "s5"]),
        (Substrings(Attr(Field.SCIM_EXTERNAL_ID), "ext", (), None), ["s2"]),  # case-exact
        (Substrings(Attr(Field.SOURCE_STATUS), None, ("sab",), None), ["s2"]),
    ],
)
def test_exact_columns(users, node, expected):
    assert find(users, node) == expected


# -- strict ordering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (Greater(Attr(Field.USER_NAME), "BOB"), ["s3", "s4", "s5"]),  # strictly: not bob
        (GreaterOrEqual(Attr(Field.USER_NAME), "BOB"), ["s2", "s3", "s4", "s5"]),
        (Less(Attr(Field.USER_NAME), "bob"), ["s1"]),
        (LessOrEqual(Attr(Field.USER_NAME), "bob"), ["s1", "s2"]),
        (Greater(Attr(Field.DISPLAY_NAME), "ZED"), ["s3"]),  # å sorts after z (code points)
        (Less(Attr(Field.DISPLAY_NAME), "b"), ["s2", "s4"]),  # "" is a value for < and >
        (Not(Less(Attr(Field.DISPLAY_NAME), "b")), ["s1", "s3", "s5"]),  # s5: NULL, so FALSE
        (Greater(Attr(Field.SCIM_EXTERNAL_ID), "EXT-1"), ["s2"]),  # "e" > "E"
        (Less(Attr(Field.SCIM_EXTERNAL_ID), "ext-1"), ["s1"]),
        (Greater(Attr(Field.ID), "s4"), ["s5"]),
        (Less(Attr(Field.EMAIL), "b"), ["s1"]),  # any of the values
        (Greater(Attr(Field.EMAIL), "bob@example.com"), ["s3"]),
        (Greater(doc(ENTERPRISE, "department"), "r&d"), ["s1"]),
        (Less(doc(ENTERPRISE, "department"), "SALES"), ["s2"]),
    ],
)
def test_strict_ordering(users, node, expected):
    assert find(users, node) == expected


# -- instants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.CREATED_AT, "2026-01-01T00:00:00Z"), ["s1"]),
        (eq(Field.CREATED_AT, "2026-01-01T01:00:00+01:00"), ["s1"]),  # the same instant
        (eq(Field.CREATED_AT, "2025-12-31T19:00:00-05:00"), ["s1"]),
        (eq(Field.CREATED_AT, "2026-01-01T00:00:00"), ["s1"]),  # no offset: UTC
        (eq(Field.CREATED_AT, "2026-01-01t00:00:00z"), ["s1"]),  # RFC 3339 §5.6 NOTE
        (eq(Field.CREATED_AT, "2026-01-01 00:00:00.000Z"), ["s1"]),
        (eq(Field.CREATED_AT, "2026-01-01T00:00:00.000001Z"), []),
        (eq(Field.UPDATED_AT, "2026-06-01T12:00:00.25Z"), ["s1"]),
        (eq(Field.UPDATED_AT, "2026-06-01T12:00:00Z"), []),  # microseconds count
        (Greater(Attr(Field.CREATED_AT), "2026-01-01T00:00:00Z"), ["s2", "s4", "s5"]),
        (GreaterOrEqual(Attr(Field.CREATED_AT), "2026-01-01T01:00:00+01:00"), ALL[:2] + ALL[3:]),
        (Less(Attr(Field.CREATED_AT), "2026-01-01T00:00:00Z"), ["s3"]),
        (LessOrEqual(Attr(Field.CREATED_AT), "2025-12-31T20:00:00-04:00"), ["s1", "s3"]),
        (Less(Attr(Field.CREATED_AT), "2025-12-31T12:00:00.000001Z"), ["s3"]),
        (has(Field.LAST_AUTH_AT), ["s2"]),
        (has(Field.CREATED_AT), ALL),
        (Not(has(Field.LAST_SYNC_AT)), ["s2", "s3", "s4", "s5"]),
        (Greater(Attr(Field.LAST_AUTH_AT), "2026-11-20T09:00:00Z"), ["s2"]),
        (Not(Greater(Attr(Field.LAST_AUTH_AT), "2026-11-20T09:00:00Z")), ["s1", "s3", "s4", "s5"]),
        (Not(Less(Attr(Field.LAST_SYNC_AT), "2027-01-01T00:00:00Z")), ["s2", "s3", "s4", "s5"]),
        (eq(Field.PENDING_DELETION_SINCE, "2026-11-21T00:00:00Z"), ["s2"]),
        (LessOrEqual(Attr(Field.LAST_SYNC_AT), "2026-11-01T09:00:00+01:00"), ["s1"]),
    ],
)
def test_instants(users, node, expected):
    assert find(users, node) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        "2026-01-01",  # a date-time needs a time (RFC 3339 §5.6, RFC 7643 §2.3.5)
        "2026-01-01T00:00Z",  # and seconds
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:60Z",  # a leap second Python cannot hold
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+0100",
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
        "9999-12-31T23:59:59-01:00",  # after datetime.max in UTC
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits: not ASCII
        "2026-01-01T00:00:00Z' OR '1'='1",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z\n",
    ],
)
def test_bad_instants_are_refused(value):
    for node in (
        eq(Field.CREATED_AT, value),
        Greater(Attr(Field.LAST_AUTH_AT), value),
        LessOrEqual(Attr(Field.UPDATED_AT), value),
    ):
        with pytest.raises(ValueError, match="RFC 3339"):
            where_clause(node, "sqlite")


@pytest.mark.parametrize("field", [Field.CREATED_AT, Field.PENDING_DELETION_SINCE])
def test_substrings_on_an_instant_are_refused(field):
    with pytest.raises(ValueError, match="date-time"):
        where_clause(Substrings(Attr(field), "2026", (), None), "postgresql")


# -- the SCIM document ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(doc(ENTERPRISE, "department"), "SALES"), ["s1"]),  # folded
        (eq(doc(ENTERPRISE, "department"), "r&d"), ["s2"]),
        (eq(doc("title"), "ENGINEER"), ["s1", "s2"]),
        (eq(doc(ENTERPRISE, "employeeNumber"), "701"), ["s1"]),
        (eq(doc(ENTERPRISE, "manager", "value"), "S2"), ["s1"]),
        (eq(doc(ENTERPRISE, "manager", "$ref"), "../users/s2"), ["s1"]),
        (eq(doc(ENTERPRISE, "costCenter"), "42"), []),  # a number is no string
        (eq(doc("title"), "7"), []),
        (eq(doc("active"), "true"), []),  # nor is a boolean
        (eq(doc("active"), "1"), []),  # SQLite reads true back as 1
        (eq(doc(ENTERPRISE), "Sales"), []),  # nor an object
        (eq(doc("addresses"), "work"), []),  # nor an array
        (eq(doc("title", "x"), "Engineer"), []),  # through a string: nothing, no error
        (eq(doc("addresses", "type"), "work"), ["s2"]),  # s2's is an object
        (eq(doc("a.b"), "flat"), ["s4"]),  # a dot is part of the key
        (eq(doc("a", "b"), "NESTED"), ["s4"]),
        (eq(doc("a.b"), "nested"), []),
        (eq(doc("Title"), "engineer"), []),  # keys match as stored
        (eq(doc("userName"), "alice"), ["s1"]),
        (has(doc("title")), ["s1", "s2"]),  # "" and 7 are no value
        (has(doc(ENTERPRISE)), []),
        (has(doc("active")), []),
        (Not(has(doc("title"))), ["s3", "s4", "s5"]),  # s5 has no document at all
        (Not(eq(doc(ENTERPRISE, "department"), "sales")), ["s2", "s3", "s4", "s5"]),
        (Substrings(doc(ENTERPRISE, "department"), "sa", (), "S"), ["s1"]),
        (Substrings(doc("title"), None, ("GINE",), None), ["s1", "s2"]),
        (GreaterOrEqual(doc("title"), "engineer"), ["s1", "s2"]),
        (And((eq(doc("title"), "engineer"), eq(Field.SOURCE_STATUS, "enabled"))), ["s1"]),
    ],
)
def test_document(users, node, expected):
    assert find(users, node) == expected


BAD_KEYS = [
    "",
    "$",
    "$.title",
    "title'",
    'title"',
    'a"."b',
    "title') OR 1=1 --",
    "title[0]",
    "ti tle",
    "title\n",
    "a\\b",
    "*",
    "é",
    "a;b",
    "-title",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_document_keys_are_refused(key):
    for node in (
        eq(doc(key), "x"),
        eq(doc(ENTERPRISE, key), "x"),
        has(doc("title", key)),
        Substrings(doc(key), "x", (), None),
        addresses(eq(el(key), "x")),
        Within(Collection.DOCUMENT, has(el("type")), path=(key,)),
        emails(Flag(el(key), True)),
        phones(has(el(key))),
    ):
        with pytest.raises(ValueError, match=r"attribute name|at least one key"):
            where_clause(node, "sqlite")
        with pytest.raises(ValueError, match=r"attribute name|at least one key"):
            where_clause(node, "postgresql")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_document_keys_are_bound_not_spliced(dialect):
    clause = where_clause(
        And((eq(doc(ENTERPRISE, "department"), "x"), addresses(Flag(el("primary"), True)))),
        dialect,
    )
    sql = str(select(User.id).where(clause).compile(dialect=_dialects[dialect]))
    for key in ("enterprise", "department", "addresses", "primary"):
        assert key not in sql


@pytest.mark.parametrize(
    "value",
    ["' OR 1=1 --", '"', "Sales' --", "%", "*", "$.title", '"}, {"title": "x'],
)
def test_document_values_are_literal(users, value):
    assert find(users, eq(doc("title"), value)) == []
    assert find(users, eq(doc(ENTERPRISE, "department"), value)) == []
    assert find(users, addresses(eq(el("type"), value))) == []


# -- value filters: emails ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (emails(eq(el("value"), "ALICE@example.COM")), ["s1"]),
        (emails(eq(el("type"), "WORK")), ["s1", "s2"]),  # folded
        (emails(And((eq(el("type"), "work"), Substrings(el("value"), "al", (), None)))), ["s1"]),
        # One element must pass the whole item: s1's home address is not its primary one.
        (emails(And((eq(el("type"), "home"), Flag(el("primary"), True)))), []),
        (emails(And((eq(el("type"), "home"), Flag(el("primary"), False)))), ["s1"]),
        (emails(Flag(el("primary"), True)), ["s1"]),  # s3's "true" is a string
        (emails(Flag(el("primary"), False)), ["s1"]),  # s2 has no primary: not false either
        (emails(eq(el("primary"), "true")), ["s3"]),  # a string test finds only strings
        (emails(has(el("primary"))), ["s1", "s3"]),  # a boolean is a value, as is a string
        (emails(has(el("type"))), ["s1", "s2"]),
        (emails(eq(el("display"), "x")), []),  # a member nobody has
        (emails(Not(Flag(el("primary"), True))), ["s1", "s2", "s3"]),  # per element
        (Not(emails(Flag(el("primary"), True))), ["s2", "s3", "s4", "s5"]),
        (
            emails(Or((eq(el("value"), "bob@example.com"), eq(el("value"), "carol@example.com")))),
            ["s2", "s3"],
        ),
        (emails(Const(None)), []),  # Within is never Undefined: no element passes
        (Not(emails(Const(None))), ALL),
        (emails(And(())), ["s1", "s2", "s3"]),  # "has an element"
        (Not(emails(And(()))), ["s4", "s5"]),
        (emails(Greater(el("value"), "b")), ["s2", "s3"]),
        (emails(Less(el("value"), "b")), ["s1"]),
    ],
)
def test_emails(users, node, expected):
    assert find(users, node) == expected


# -- value filters: phones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (phones(eq(el("value"), "+1 555 0100")), ["s1"]),
        (phones(eq(el("type"), "sms")), ["s1"]),
        (phones(eq(el("type"), "SMS")), []),  # the kind is exact
        (phones(eq(el("type"), "voice")), ["s2"]),  # s1's voice number is a tombstone
        (phones(eq(el("value"), "")), []),
        (phones(And((Flag(el("primary"), True), eq(el("type"), "sms")))), ["s1"]),
        (phones(Flag(el("primary"), False)), ["s1"]),  # position 1
        (phones(Flag(el("manual"), True)), ["s1"]),  # the manual tombstone is hidden
        (phones(Flag(el("manual"), False)), ["s1", "s2"]),
        (phones(And((Flag(el("manual"), True), Flag(el("primary"), True)))), []),
        (phones(has(el("primary"))), ["s1", "s2"]),
        (phones(has(el("value"))), ["s1", "s2"]),
        (phones(eq(el("display"), "x")), []),
        (phones(Flag(el("value"), True)), []),  # a string is no flag
        (phones(eq(el("primary"), "true")), []),  # and a flag no string
        (phones(Substrings(el("value"), "+1 555 02", (), None)), ["s2"]),
        (Not(phones(eq(el("type"), "voice"))), ["s1", "s3", "s4", "s5"]),
        (phones(Substrings(el("type"), "v", (), None)), ["s2"]),
        (phones(Substrings(el("type"), "V", (), None)), []),
    ],
)
def test_phones(users, node, expected):
    assert find(users, node) == expected


# -- value filters: arrays in the document --------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (addresses(And((eq(el("type"), "WORK"), eq(el("locality"), "paris")))), ["s1"]),
        (addresses(And((eq(el("type"), "home"), eq(el("locality"), "paris")))), []),
        (addresses(And((eq(el("type"), "home"), Flag(el("primary"), True)))), []),
        (addresses(Flag(el("primary"), True)), ["s1"]),  # s2's object is no array
        (addresses(Flag(el("primary"), False)), ["s1"]),
        (addresses(has(el("locality"))), ["s1"]),
        (addresses(And(())), ["s1"]),  # s1's strings and numbers count as elements
        (addresses(eq(el("value"), "a stray string")), []),  # they have no members
        (Not(addresses(eq(el("type"), "work"))), ["s2", "s3", "s4", "s5"]),
        (Within(Collection.DOCUMENT, And(()), path=(ENTERPRISE,)), []),  # an object
        (Within(Collection.DOCUMENT, And(()), path=("title",)), []),  # a string
        (Within(Collection.DOCUMENT, And(()), path=(ENTERPRISE, "nothing")), []),
    ],
)
def test_document_arrays(users, node, expected):
    assert find(users, node) == expected


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (Flag(el("primary"), True), "inside a value filter"),
        (eq(el("type"), "work"), "inside a value filter"),
        (has(el("type")), "inside a value filter"),
        (Not(Substrings(el("type"), "w", (), None)), "inside a value filter"),
        (emails(Flag(Attr(Field.DISPLAY_NAME), True)), "element member"),
        (emails(eq(Attr(Field.ELEMENT, path=("a", "b")), "x")), "one key"),
        (emails(emails(eq(el("type"), "work"))), "another value filter"),
        (emails(And((Not(phones(And(()))),))), "another value filter"),
        (Within(Collection.DOCUMENT, And(())), "path"),
        (Within(Collection.EMAILS, And(()), path=("emails",)), "path"),
        (Within(Collection.MEMBERS, eq(el("value"), "s1")), "users have no members"),
    ],
)
def test_refused_value_filters(node, message):
    for dialect in ("sqlite", "postgresql"):
        with pytest.raises(ValueError, match=message):
            where_clause(node, dialect)


# -- sorting and paging ---------------------------------------------------------------------------


def page(
    store, order: Attr | None, *, descending=False, offset=0, limit=100, node: Node | None = None
) -> tuple[int, list[str]]:
    with store.reading() as session:
        total, found = search_page(
            session,
            where_clause(And(()) if node is None else node, store.dialect),
            order=order,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        return total, [user.id for user in found]


# RFC 7644 §3.4.2.3: no data for sortBy sorts last ascending, first descending; ties (and the
# missing ones among themselves) are in id order either way.
@pytest.mark.parametrize(
    ("order", "ascending", "descending"),
    [
        (Attr(Field.USER_NAME), ALL, ["s5", "s4", "s3", "s2", "s1"]),  # "Bob" folded
        # Folded code points: adam, zed, åsa; "" and NULL are missing.
        (Attr(Field.DISPLAY_NAME), ["s2", "s1", "s3", "s4", "s5"], ["s4", "s5", "s3", "s1", "s2"]),
        # caseExact: "EXT-1" < "ext-1".
        (
            Attr(Field.SCIM_EXTERNAL_ID),
            ["s1", "s2", "s3", "s4", "s5"],
            ["s3", "s4", "s5", "s2", "s1"],
        ),
        (Attr(Field.SOURCE), ["s3", "s4", "s5", "s1", "s2"], ["s1", "s2", "s3", "s4", "s5"]),
        (Attr(Field.DISABLED_BY), ["s2", "s1", "s3", "s4", "s5"], ["s1", "s3", "s4", "s5", "s2"]),
        (Attr(Field.REASON), ["s2", "s1", "s3", "s4", "s5"], ["s1", "s3", "s4", "s5", "s2"]),
        (Attr(Field.CREATED_AT), ["s3", "s1", "s2", "s4", "s5"], ["s4", "s5", "s2", "s1", "s3"]),
        (Attr(Field.LAST_AUTH_AT), ["s2", "s1", "s3", "s4", "s5"], ["s1", "s3", "s4", "s5", "s2"]),
        (Attr(Field.ID), ALL, ["s5", "s4", "s3", "s2", "s1"]),
        # A tie between "Engineer" and "engineer" goes to the id; "" and 7 are missing.
        (doc("title"), ["s1", "s2", "s3", "s4", "s5"], ["s3", "s4", "s5", "s1", "s2"]),
        (
            doc(ENTERPRISE, "department"),
            ["s2", "s1", "s3", "s4", "s5"],
            ["s3", "s4", "s5", "s1", "s2"],
        ),
        (None, ALL, ALL),  # sortOrder applies to sortBy only
    ],
)
def test_sorting(users, order, ascending, descending):
    assert page(users, order) == (5, ascending)
    assert page(users, order, descending=True) == (5, descending)


def test_sort_is_code_point_order(users):
    """å (U+00E5) after z on both backends, whatever PostgreSQL's collation says."""
    with users.writing() as session:
        session.add_all(
            [
                make_user("t1", "t1", given_name="Émile"),
                make_user("t2", "t2", given_name="zoe"),
                make_user("t3", "t3", given_name="Eve"),
                make_user("t4", "t4", given_name="émile"),
            ]
        )
    total, ids = page(users, Attr(Field.GIVEN_NAME), node=has(Field.GIVEN_NAME))
    assert (total, ids) == (4, ["t3", "t2", "t1", "t4"])


@pytest.mark.parametrize(
    ("descending", "offset", "limit", "expected"),
    [
        (False, 0, 2, ["s2", "s1"]),
        (False, 2, 2, ["s3", "s4"]),
        (False, 4, 2, ["s5"]),
        (False, 5, 2, []),
        (False, 50, 2, []),
        (False, 1, 0, []),  # SCIM count=0: the total only (RFC 7644 §3.4.2.4)
        (True, 0, 3, ["s4", "s5", "s3"]),
        (True, 3, 3, ["s1", "s2"]),
    ],
)
def test_paging(users, descending, offset, limit, expected):
    order = Attr(Field.DISPLAY_NAME)
    assert page(users, order, descending=descending, offset=offset, limit=limit) == (5, expected)


def test_paging_counts_matches_not_the_page(users):
    node = Or((eq(Field.SOURCE, "corp"), has(Field.LAST_AUTH_AT)))
    assert page(users, Attr(Field.USER_NAME), offset=1, limit=2, node=node) == (4, ["s3", "s4"])
    assert page(users, None, node=Const(None)) == (0, [])


def test_page_loads_phones(users):
    with users.reading() as session:
        _, (alice,) = search_page(
            session,
            where_clause(eq(Field.ID, "s1"), users.dialect),
            order=None,
            descending=False,
            offset=0,
            limit=10,
        )
        session.expunge(alice)
    assert [(p.kind, p.position, p.number) for p in alice.phones] == [
        ("sms", 0, "+1 555 0100"),
        ("sms", 1, "+1 555 0101"),
        ("voice", 0, ""),
    ]


@pytest.mark.parametrize(
    "order",
    [
        Attr(Field.EMAIL),
        Attr(Field.CN),
        Attr(Field.UPN),
        Attr(Field.DN),
        Attr(Field.GROUP),
        Attr(Field.SMS_PHONE),
        Attr(Field.POLICY, "radiusClass"),
        el("value"),
    ],
)
def test_unorderable_attributes_are_refused(users, order):
    with pytest.raises(ValueError, match="cannot be sorted by"):
        page(users, order)


def test_negative_paging_is_refused(users):
    with pytest.raises(ValueError, match="negative"):
        page(users, None, offset=-1)
    with pytest.raises(ValueError, match="negative"):
        page(users, None, limit=-1)


def _unique_index_on_user_name(connection, dialect: str) -> str:
    """The index behind UNIQUE (source_id, user_name_key): on SQLite an autoindex."""
    if dialect == "postgresql":
        return "uq_users_source_id_user_name_key"
    for _, name, *_ in connection.exec_driver_sql("PRAGMA index_list(users)"):
        columns = [row[2] for row in connection.exec_driver_sql(f"PRAGMA index_info('{name}')")]
        if columns == ["source_id", "user_name_key"]:
            return str(name)
    raise AssertionError("no (source_id, user_name_key) index")


def test_user_name_equality_seeks_the_unique_index(users):
    """`userName eq "x"` names no source, yet its page query (and a COUNT, where one runs)
    seeks the (source_id, user_name_key) unique index once per source, through the always-true
    `source_id IN (SELECT id FROM sources)` the compiler adds.

    EXPLAIN, with 3000 users in three sources and fresh statistics (without the IN, SQLite
    plans "SCAN users" and PostgreSQL a Seq Scan: neither can seek an index on its second
    column alone):
    SQLite:      SEARCH users USING [COVERING] INDEX sqlite_autoindex_users_N
                 (source_id=? AND user_name_key=?), with a LIST SUBQUERY over sources;
    PostgreSQL:  Index Scan using uq_users_source_id_user_name_key on users, Index Cond:
                 ((source_id = sources.id) AND (user_name_key = 'x')) under a Nested Loop
                 over sources; no Seq Scan on users.
    """
    rows = [
        {
            "id": f"bulk-{number:05d}",
            "source_id": ("corp", "hr", "extra")[number % 3],
            "external_id": f"bulk-{number}",
            "user_name": f"user{number}",
            "user_name_key": f"user{number}",
            "emails": [],
            "groups": [],
            "policy": {},
            "source_status": "enabled",
            "source_digest": "0" * 64,
            "status": "active",
            "status_changed_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
            "version": 1,
        }
        for number in range(3000)
    ]
    with users.writing() as session:
        queries.ensure_sources(session, [("extra", "scim")], NOW)
        session.flush()
        session.execute(insert(User), rows)
    with users.core_connection() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()

    statements: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "user_name_key" in statement:
            statements.append((statement, parameters))

    event.listen(users.engine, "before_cursor_execute", capture)
    try:
        total, ids = page(users, None, node=eq(Field.USER_NAME, "USER1234"))
        total_sorted, _ = page(users, Attr(Field.CREATED_AT), node=eq(Field.USER_NAME, "x"))
    finally:
        event.remove(users.engine, "before_cursor_execute", capture)
    assert (total, ids, total_sorted) == (1, ["bulk-01234"], 0)
    # One page query each: a first page shorter than the limit holds every match, so no COUNT.
    assert len(statements) == 2

    with users.core_connection() as connection:
        index = _unique_index_on_user_name(connection, users.dialect)
        for statement, parameters in statements:
            if users.dialect == "sqlite":
                plan = "\n".join(
                    row[3]
                    for row in connection.exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {statement}", parameters
                    )
                )
                assert f"INDEX {index} (source_id=? AND user_name_key=?)" in plan, plan
                assert "SCAN users" not in plan, plan
            else:
                plan = "\n".join(
                    row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                )
                assert f"using {index} on users" in plan, plan
                assert "Seq Scan on users" not in plan, plan


# -- groups ---------------------------------------------------------------------------------------


@pytest.fixture
def groups(users):
    def group(group_id: str, name: str, source: str, created: str, **columns: Any) -> Group:
        return Group(
            id=group_id,
            source_id=source,
            external_id=f"ext-{group_id}",
            display_name=name,
            display_name_key=name_key(name),
            created_at=at(created),
            updated_at=at(created) + timedelta(days=1),
            **columns,
        )

    with users.writing() as session:
        session.add_all(
            [
                group("g1", "Admins", "hr", "2026-01-01T00:00:00+00:00", scim_external_id="G-1"),
                group("g2", "staff", "hr", "2026-02-01T00:00:00+00:00", scim_external_id="g-2"),
                group("g3", "Straße", "corp", "2026-03-01T00:00:00+00:00"),
            ]
        )
        session.flush()
        session.add_all(
            [
                GroupMember(group_id="g1", user_id="s1"),
                GroupMember(group_id="g2", user_id="s1"),
                GroupMember(group_id="g2", user_id="s2"),
            ]
        )
    return users


def find_groups(store, node: Node) -> list[str]:
    with store.reading() as session:
        total, found = search_groups_page(
            session,
            group_where_clause(node, store.dialect),
            order=None,
            descending=False,
            offset=0,
            limit=100,
        )
    assert total == len(found)
    return [group.id for group in found]


def members(item: Node) -> Within:
    return Within(Collection.MEMBERS, item)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.ID, "g1"), ["g1"]),
        (eq(Field.ID, "G1"), []),
        (eq(Field.SOURCE, "corp"), ["g3"]),
        (eq(Field.DISPLAY_NAME, "  ADMINS "), ["g1"]),  # like name_key
        (eq(Field.DISPLAY_NAME, "STRASSE"), ["g3"]),  # casefold
        (Substrings(Attr(Field.DISPLAY_NAME), "ADM", (), None), ["g1"]),
        (Greater(Attr(Field.DISPLAY_NAME), "staff"), ["g3"]),
        (has(Field.DISPLAY_NAME), ["g1", "g2", "g3"]),
        (eq(Field.SCIM_EXTERNAL_ID, "G-1"), ["g1"]),
        (eq(Field.SCIM_EXTERNAL_ID, "g-1"), []),
        (Not(eq(Field.SCIM_EXTERNAL_ID, "G-1")), ["g2", "g3"]),  # g3's NULL: FALSE
        (has(Field.SCIM_EXTERNAL_ID), ["g1", "g2"]),
        (eq(Field.CREATED_AT, "2026-01-01T01:00:00+01:00"), ["g1"]),
        (Greater(Attr(Field.UPDATED_AT), "2026-02-02T00:00:00Z"), ["g3"]),
        (GreaterOrEqual(Attr(Field.UPDATED_AT), "2026-02-02T00:00:00Z"), ["g2", "g3"]),
        (members(eq(el("value"), "s1")), ["g1", "g2"]),
        (members(eq(el("value"), "s2")), ["g2"]),
        (members(eq(el("value"), "S2")), []),  # user ids are exact
        (members(eq(el("value"), "' OR 1=1 --")), []),
        (members(has(el("value"))), ["g1", "g2"]),  # has a member
        (Not(members(has(el("value")))), ["g3"]),
        (members(And((eq(el("value"), "s1"), eq(el("value"), "s2")))), []),  # one member at once
        (And((members(eq(el("value"), "s1")), members(eq(el("value"), "s2")))), ["g2"]),
        (members(eq(el("display"), "alice")), []),
        (members(Flag(el("value"), True)), []),
        (Or((eq(Field.DISPLAY_NAME, "staff"), Const(None))), ["g2"]),
        (Not(Or((eq(Field.DISPLAY_NAME, "staff"), Const(None)))), []),  # NOT Undefined
    ],
)
def test_groups(groups, node, expected):
    assert find_groups(groups, node) == expected


@pytest.mark.parametrize(
    "node",
    [
        eq(Field.USER_NAME, "alice"),
        eq(Field.EXTERNAL_ID, "ext-g1"),
        eq(Field.EMAIL, "x"),
        has(Field.GIVEN_NAME),
        eq(Field.STATUS, "active"),
        eq(doc("displayName"), "Admins"),
        Present(Attr(Field.POLICY, "radiusClass")),
        DnSuffix("dc=corp"),
        Within(Collection.EMAILS, And(())),
        Within(Collection.PHONES, And(())),
        Within(Collection.DOCUMENT, And(()), path=("members",)),
        Flag(el("value"), True),
        members(members(And(()))),
        Substrings(Attr(Field.CREATED_AT), "2026", (), None),
        eq(Field.CREATED_AT, "not a date"),
    ],
)
def test_refused_group_filters(node):
    for dialect in ("sqlite", "postgresql"):
        with pytest.raises(ValueError):
            group_where_clause(node, dialect)


@pytest.mark.parametrize(
    ("order", "ascending", "descending"),
    [
        (Attr(Field.DISPLAY_NAME), ["g1", "g2", "g3"], ["g3", "g2", "g1"]),  # admins < strasse
        (Attr(Field.SCIM_EXTERNAL_ID), ["g1", "g2", "g3"], ["g3", "g2", "g1"]),  # g3's is missing
        (Attr(Field.CREATED_AT), ["g1", "g2", "g3"], ["g3", "g2", "g1"]),
        (Attr(Field.UPDATED_AT), ["g1", "g2", "g3"], ["g3", "g2", "g1"]),
        (Attr(Field.ID), ["g1", "g2", "g3"], ["g3", "g2", "g1"]),
    ],
)
def test_group_sorting(groups, order, ascending, descending):
    where = group_where_clause(And(()), groups.dialect)
    with groups.reading() as session:
        for reverse, expected in ((False, ascending), (True, descending)):
            total, found = search_groups_page(
                session, where, order=order, descending=reverse, offset=0, limit=10
            )
            assert (total, [group.id for group in found]) == (3, expected)


def test_group_paging(groups):
    where = group_where_clause(members(has(el("value"))), groups.dialect)
    with groups.reading() as session:
        total, found = search_groups_page(
            session, where, order=Attr(Field.DISPLAY_NAME), descending=True, offset=1, limit=1
        )
    assert (total, [group.id for group in found]) == (2, ["g1"])


@pytest.mark.parametrize(
    "order", [Attr(Field.SOURCE), Attr(Field.USER_NAME), doc("displayName"), el("value")]
)
def test_unorderable_group_attributes_are_refused(groups, order):
    with groups.reading() as session, pytest.raises(ValueError, match="cannot be sorted by"):
        search_groups_page(
            session,
            group_where_clause(And(()), groups.dialect),
            order=order,
            descending=False,
            offset=0,
            limit=10,
        )


def test_group_display_name_equality_is_source_keyed(groups):
    """The same index trick as for userName: UNIQUE (source_id, display_name_key)."""
    clause = group_where_clause(eq(Field.DISPLAY_NAME, "staff"), groups.dialect)
    sql = str(select(Group.id).where(clause).compile(groups.engine))
    assert "groups.source_id IN (SELECT sources.id" in sql
    assert find_groups(groups, eq(Field.DISPLAY_NAME, "staff")) == ["g2"]
