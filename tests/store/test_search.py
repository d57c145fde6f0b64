"""The user filter compiled to SQL (store.search), on SQLite and PostgreSQL.

Three-valued logic as RFC 4511 §4.5.1.7; absolute true and false as RFC 4526.
"""

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.users.names import dn_key, name_key
from query.filter import (
    And,
    Attr,
    Const,
    DnSuffix,
    Equals,
    Field,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    Substrings,
)
from store import users as queries
from store.models import PhoneNumber, User
from store.search import count_users, search_users, where_clause

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_user(user_id: str, user_name: str, **columns: Any) -> User:
    phones = columns.pop("phones", [])
    dn = columns.pop("dn", None)
    upn = columns.pop("upn", None)
    values: dict[str, Any] = {
        "source_id": "corp",
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
    user = User(
        id=user_id,
        user_name=user_name,
        user_name_key=name_key(user_name),
        dn=dn,
        dn_key=dn_key(dn) if dn else None,
        upn_key=name_key(upn) if upn else None,
        **values,
    )
    user.phones = [
        PhoneNumber(kind=kind, position=position, number=number, manual=False)
        for kind, position, number in phones
    ]
    return user


def sample_users() -> list[User]:
    return [
        make_user(
            "u1",
            "Alice",
            upn="Alice@Corp.Example",
            dn="uid=alice,ou=people,dc=corp",
            display_name="ÅSA Ström",
            given_name="Åsa",
            family_name="Ström",
            emails=[
                {"value": "Alice@Corp.Example", "type": "work", "primary": True},
                {"value": "a@home.example", "type": "home", "primary": False},
            ],
            groups=["cn=Admins,ou=groups,dc=corp", "staff"],
            policy={"radiusClass": ["Gold", "vpn"], "other": ["silver"]},
            phones=[("sms", 0, "+1 555 0100"), ("sms", 1, ""), ("voice", 0, "+1 555 0199")],
        ),
        make_user(
            "u2",
            "bob",
            dn="uid=bob,ou=people,dc=corp",
            groups=["staff"],
            phones=[("sms", 0, "")],
            status="disabled",
            disabled_by="source",
            reason="source_disabled",
            external_id="ext-B",
        ),
        make_user(
            "u3",
            "100%_real",
            source_id="hr",
            display_name="50% off_sale",
            policy={"radiusClass": "Scalar"},
            emails=[{"value": "", "type": "work", "primary": True}],
        ),
        make_user(
            "u4",
            "Carol",
            upn="carol@corp.example",
            dn="uid=carol,ou=sub,ou=people,dc=corp",
            display_name="' OR 1=1 --",
            given_name="*)(uid=*",
            family_name="zeta",
        ),
        make_user(
            "u5",
            "Straße",
            dn="uid=dave,ou=peoplex,dc=corp",
            display_name="",
            family_name="Åberg",
        ),
    ]


ALL = ["u1", "u2", "u3", "u4", "u5"]


@pytest.fixture
def users(store):
    with store.writing() as session:
        queries.ensure_sources(session, [("corp", "ldap"), ("hr", "scim")], NOW)
        session.flush()
        session.add_all(sample_users())
    return store


def find(store, node) -> list[str]:
    with store.reading() as session:
        found = search_users(session, where_clause(node, store.dialect), after_id=None, limit=100)
        return [user.id for user in found]


def eq(field: Field, value: str, name: str | None = None) -> Equals:
    return Equals(Attr(field, name), value)


def has(field: Field, name: str | None = None) -> Present:
    return Present(Attr(field, name))


def sub(field: Field, initial=None, any_=(), final=None) -> Substrings:
    return Substrings(Attr(field), initial, tuple(any_), final)


# -- single-valued fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.ID, "u1"), ["u1"]),
        (eq(Field.ID, "U1"), []),  # ids compare exactly
        (eq(Field.SOURCE, "hr"), ["u3"]),
        (eq(Field.EXTERNAL_ID, "ext-B"), ["u2"]),
        (eq(Field.EXTERNAL_ID, "ext-b"), []),
        (eq(Field.USER_NAME, "  ALICE "), ["u1"]),  # folded and stripped like name_key
        (eq(Field.USER_NAME, "STRASSE"), ["u5"]),  # casefold: ß folds to ss
        (eq(Field.UPN, "ALICE@corp.EXAMPLE"), ["u1"]),
        (eq(Field.DN, dn_key("UID=Alice, OU=People, DC=Corp")), ["u1"]),
        (eq(Field.DN, "UID=alice,ou=people,dc=corp"), []),  # the caller passes the key
        (eq(Field.DISPLAY_NAME, "åsa STRÖM"), ["u1"]),
        (eq(Field.GIVEN_NAME, "ÅSA"), ["u1"]),
        (eq(Field.FAMILY_NAME, "åberg"), ["u5"]),
        (eq(Field.CN, "åsa ström"), ["u1"]),  # the display name when there is one
        (eq(Field.CN, "BOB"), ["u2"]),  # else the user name
        (eq(Field.STATUS, "disabled"), ["u2"]),
        (eq(Field.STATUS, "DISABLED"), []),
        (eq(Field.REASON, "source_disabled"), ["u2"]),
    ],
)
def test_equality(users, node, expected):
    assert find(users, node) == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (Field.ID, ALL),
        (Field.USER_NAME, ALL),
        (Field.UPN, ["u1", "u4"]),
        (Field.DN, ["u1", "u2", "u4", "u5"]),
        (Field.DISPLAY_NAME, ["u1", "u3", "u4"]),  # NULL and "" are no value
        (Field.GIVEN_NAME, ["u1", "u4"]),
        (Field.CN, ["u1", "u2", "u3", "u4"]),  # u5's display name is "", not NULL
        (Field.REASON, ["u2"]),
        (Field.EMAIL, ["u1"]),  # u3's only address is empty
        (Field.GROUP, ["u1", "u2"]),
        (Field.SMS_PHONE, ["u1"]),  # u2 has only a tombstone
        (Field.VOICE_PHONE, ["u1"]),
    ],
)
def test_presence(users, field, expected):
    assert find(users, has(field)) == expected


def test_policy_presence_is_per_name(users):
    assert find(users, has(Field.POLICY, "radiusClass")) == ["u1", "u3"]
    assert find(users, has(Field.POLICY, "other")) == ["u1"]
    assert find(users, has(Field.POLICY, "radiusclass")) == []  # names match as stored


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (sub(Field.DISPLAY_NAME, initial="åsa"), ["u1"]),
        (sub(Field.DISPLAY_NAME, final="STRÖM"), ["u1"]),
        (sub(Field.DISPLAY_NAME, any_=["S", "R"]), ["u1"]),
        (sub(Field.DISPLAY_NAME, initial="åsa", any_=["a"]), []),  # pieces do not overlap
        (sub(Field.DISPLAY_NAME, initial="å", any_=["s"], final="m"), ["u1"]),
        (sub(Field.DISPLAY_NAME, initial="åsa s", final="a ström"), []),
        # % and _ in the assertion are literal characters, not wildcards.
        (sub(Field.DISPLAY_NAME, any_=["0% OFF_"]), ["u3"]),
        (sub(Field.DISPLAY_NAME, any_=["%"]), ["u3"]),
        (sub(Field.DISPLAY_NAME, initial="5_"), []),
        (sub(Field.USER_NAME, any_=["%_"]), ["u3"]),
        (sub(Field.USER_NAME, initial="AL"), ["u1"]),
        (sub(Field.USER_NAME, initial="STRASS"), ["u5"]),
        (sub(Field.UPN, final="@CORP.example"), ["u1", "u4"]),
        (sub(Field.CN, initial="B"), ["u2"]),
        (sub(Field.GIVEN_NAME, initial="*)("), ["u4"]),
        # Exact fields stay case-sensitive (SQLite's LIKE would not be).
        (sub(Field.EXTERNAL_ID, final="-B"), ["u2"]),
        (sub(Field.EXTERNAL_ID, final="-b"), []),
        (sub(Field.EXTERNAL_ID, initial="ext-", final="*"), []),
        (sub(Field.DN, final=",ou=sub,ou=people,dc=corp"), ["u4"]),
        (sub(Field.STATUS, initial="dis"), ["u2"]),
    ],
)
def test_substrings(users, node, expected):
    assert find(users, node) == expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (GreaterOrEqual(Attr(Field.USER_NAME), "C"), ["u4", "u5"]),  # carol, strasse
        (LessOrEqual(Attr(Field.USER_NAME), "BOB"), ["u1", "u2", "u3"]),  # "100%_real" < "a"
        (GreaterOrEqual(Attr(Field.FAMILY_NAME), "STRÖM"), ["u1", "u4", "u5"]),  # å > z
        (LessOrEqual(Attr(Field.FAMILY_NAME), "zeta"), ["u1", "u4"]),  # å sorts after z
        (GreaterOrEqual(Attr(Field.FAMILY_NAME), "Å"), ["u5"]),
        (GreaterOrEqual(Attr(Field.EXTERNAL_ID), "ext-u"), ["u1", "u3", "u4", "u5"]),
        (LessOrEqual(Attr(Field.EMAIL), "A@HOME.EXAMPLE"), ["u1", "u3"]),  # "" <= anything
        (GreaterOrEqual(Attr(Field.EMAIL), "alice@"), ["u1"]),
    ],
)
def test_ordering(users, node, expected):
    assert find(users, node) == expected


# -- multi-valued fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.EMAIL, "alice@CORP.example"), ["u1"]),
        (eq(Field.EMAIL, "A@HOME.EXAMPLE"), ["u1"]),  # any value, not only the primary
        (eq(Field.EMAIL, "work"), []),  # the type is not a value
        (eq(Field.GROUP, "CN=admins,OU=Groups,DC=corp"), ["u1"]),
        (eq(Field.GROUP, "staff"), ["u1", "u2"]),
        (eq(Field.POLICY, "GOLD", "radiusClass"), ["u1"]),
        (eq(Field.POLICY, "vpn", "radiusClass"), ["u1"]),
        (eq(Field.POLICY, "silver", "radiusClass"), []),  # another attribute's value
        (eq(Field.POLICY, "scalar", "radiusClass"), ["u3"]),  # a scalar is a one-value list
        (eq(Field.SMS_PHONE, "+1 555 0100"), ["u1"]),
        (eq(Field.SMS_PHONE, ""), []),  # tombstones are hidden
        (eq(Field.VOICE_PHONE, "+1 555 0100"), []),  # kinds do not mix
        (eq(Field.VOICE_PHONE, "+1 555 0199"), ["u1"]),
        (sub(Field.EMAIL, final="@corp.example"), ["u1"]),
        (sub(Field.GROUP, initial="cn=admins,"), ["u1"]),
        (sub(Field.SMS_PHONE, initial="+1"), ["u1"]),
        (Substrings(Attr(Field.POLICY, "radiusClass"), "g", (), None), ["u1"]),
    ],
)
def test_multi_valued(users, node, expected):
    assert find(users, node) == expected


def test_policy_attr_needs_a_name_and_only_policy_has_one():
    with pytest.raises(ValueError, match="POLICY"):
        Attr(Field.POLICY)
    with pytest.raises(ValueError, match="POLICY"):
        Attr(Field.EMAIL, "x")


def test_policy_name_is_not_a_path(users):
    """A name with JSON path or SQL syntax is only ever a key looked up as it is."""
    for name in ('radiusClass"', "$.radiusClass", "radiusClass' --", "*"):
        assert find(users, has(Field.POLICY, name)) == []


# -- logic ----------------------------------------------------------------------------------------

UNDEFINED = Const(None)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (And(()), ALL),  # RFC 4526 absolute true
        (Or(()), []),  # RFC 4526 absolute false
        (Const(True), ALL),
        (Const(False), []),
        (Not(Const(False)), ALL),
        (UNDEFINED, []),
        (Not(UNDEFINED), []),  # NOT Undefined is Undefined
        (Or((UNDEFINED, eq(Field.ID, "u2"))), ["u2"]),
        (And((UNDEFINED, eq(Field.ID, "u2"))), []),
        (Not(And((UNDEFINED, eq(Field.ID, "u2")))), ["u1", "u3", "u4", "u5"]),  # FALSE for them
        (Not(Or((UNDEFINED, eq(Field.ID, "u2")))), []),
        # An absent value makes a leaf FALSE, not Undefined.
        (Not(eq(Field.DISPLAY_NAME, "åsa ström")), ["u2", "u3", "u4", "u5"]),
        (Not(eq(Field.UPN, "alice@corp.example")), ["u2", "u3", "u4", "u5"]),
        (Not(GreaterOrEqual(Attr(Field.GIVEN_NAME), "a")), ["u2", "u3", "u4", "u5"]),  # "*" < "a"
        (Not(sub(Field.DN, initial="uid=")), ["u3"]),
        (Not(eq(Field.REASON, "source_disabled")), ["u1", "u3", "u4", "u5"]),
        (Not(eq(Field.EMAIL, "a@home.example")), ["u2", "u3", "u4", "u5"]),
        (Not(has(Field.SMS_PHONE)), ["u2", "u3", "u4", "u5"]),
        (
            And((eq(Field.GROUP, "staff"), Not(eq(Field.STATUS, "disabled")))),
            ["u1"],
        ),
        (
            Or((eq(Field.USER_NAME, "carol"), eq(Field.SOURCE, "hr"), eq(Field.ID, "nope"))),
            ["u3", "u4"],
        ),
        (And((Or((has(Field.UPN), has(Field.REASON))), Not(has(Field.EMAIL)))), ["u2", "u4"]),
    ],
)
def test_logic(users, node, expected):
    assert find(users, node) == expected


# -- subtree narrowing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ou=people,dc=corp", ["u1", "u2", "u4"]),  # not u5, under ou=peoplex
        ("ou=sub,ou=people,dc=corp", ["u4"]),
        ("uid=alice,ou=people,dc=corp", ["u1"]),  # the base entry itself
        ("dc=corp", ["u1", "u2", "u4", "u5"]),
        ("ou=p_ople,dc=corp", []),  # _ is literal
        ("%", []),
        ("people,dc=corp", []),  # only whole RDNs
    ],
)
def test_dn_suffix(users, key, expected):
    assert find(users, DnSuffix(key)) == expected


def test_dn_suffix_never_holds_a_user_without_a_dn(users):
    assert find(users, Not(DnSuffix("dc=corp"))) == ["u3"]


# -- injection-looking values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (eq(Field.GIVEN_NAME, "*)(uid=*"), ["u4"]),
        (eq(Field.DISPLAY_NAME, "' OR 1=1 --"), ["u4"]),
        (eq(Field.USER_NAME, "' OR 1=1 --"), []),
        (eq(Field.USER_NAME, "*"), []),
        (eq(Field.ID, "u1' OR '1'='1"), []),
        (eq(Field.POLICY, "' OR 1=1 --", "radiusClass"), []),
        (sub(Field.DISPLAY_NAME, any_=["' OR 1=1 --"]), ["u4"]),
        (DnSuffix("' OR 1=1 --"), []),
    ],
)
def test_values_are_literal(users, node, expected):
    assert find(users, node) == expected


# -- paging, loading and counting -----------------------------------------------------------------


def test_keyset_paging(users):
    where = where_clause(Not(eq(Field.ID, "u3")), users.dialect)
    pages: list[list[str]] = []
    after = None
    with users.reading() as session:
        while True:
            page = search_users(session, where, after_id=after, limit=2)
            if not page:
                break
            pages.append([user.id for user in page])
            after = page[-1].id
    assert pages == [["u1", "u2"], ["u4", "u5"]]


def test_phones_come_loaded(users):
    with users.reading() as session:
        (alice,) = search_users(
            session, where_clause(eq(Field.ID, "u1"), users.dialect), after_id=None, limit=10
        )
        session.expunge(alice)
    assert [(p.kind, p.number) for p in alice.phones] == [
        ("sms", "+1 555 0100"),
        ("sms", ""),
        ("voice", "+1 555 0199"),
    ]


def test_count(users):
    with users.reading() as session:
        assert count_users(session, where_clause(eq(Field.GROUP, "staff"), users.dialect)) == 2
        assert count_users(session, where_clause(UNDEFINED, users.dialect)) == 0


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="mysql"):
        where_clause(And(()), "mysql")
