"""Filter building: every value escaped (RFC 4515 §3), binary values octet by octet."""

import uuid

import pytest
from ldap3 import DEREF_NEVER, SUBTREE
from ldap3.operation.search import search_operation

from gateway.directory.filters import equality, escape_octets, escape_value, scope_filter


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("*", "\\2a"),
        ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
        ("alice)(|(uid=*", "alice\\29\\28|\\28uid=\\2a"),
        ("\\00", "\\5c00"),
        ("(", "\\28"),
        ("a\x00b", "a\\00b"),
        (" alice ", "\\20alice\\20"),
        ("Jürgen", "Jürgen"),
    ],
)
def test_escape_value(value: str, escaped: str) -> None:
    assert escape_value(value) == escaped


def test_a_lone_surrogate_cannot_be_escaped() -> None:
    with pytest.raises(ValueError):
        escape_value("a\udc80")


def test_object_guid_is_escaped_octet_by_octet() -> None:
    guid = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")

    # objectGUID's first three fields are little-endian (MS-DTYP §2.3.4.2).
    assert escape_octets(guid.bytes_le) == (
        "\\67\\45\\23\\01\\ab\\89\\ef\\cd\\01\\23\\45\\67\\89\\ab\\cd\\ef"
    )
    assert escape_octets(b"(*)\\") == "\\28\\2a\\29\\5c"
    assert escape_octets(b"") == ""


def test_escaped_octets_reach_the_wire_as_the_raw_value() -> None:
    # ldap3 turns the \\xx escapes back into octets in the BER-encoded assertion value.
    guid = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    search_filter = scope_filter("user", None, equality("objectGUID", escape_octets(guid.bytes_le)))

    request = search_operation(
        "DC=corp", search_filter, SUBTREE, DEREF_NEVER, ["cn"], 0, 0, False, True, True, None,
        check_names=False,
    )  # fmt: skip

    assertion = request["filter"]["and"][1]["equalityMatch"]
    assert str(assertion["attributeDesc"]) == "objectGUID"
    assert bytes(assertion["assertionValue"]) == guid.bytes_le


def test_escaped_text_reaches_the_wire_unchanged() -> None:
    value = " a*(b)\\c\x00 "
    request = search_operation(
        "DC=corp", equality("uid", escape_value(value)), SUBTREE, DEREF_NEVER, ["cn"], 0, 0,
        False, True, True, None, check_names=False,
    )  # fmt: skip

    assert bytes(request["filter"]["equalityMatch"]["assertionValue"]) == value.encode()


def test_scope_filter() -> None:
    assert scope_filter("inetOrgPerson", None) == "(&(objectClass=inetOrgPerson))"
    assert scope_filter("user", "(!(ou=x))", equality("uid", "a")) == (
        "(&(objectClass=user)(!(ou=x))(uid=a))"
    )
