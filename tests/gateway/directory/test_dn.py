"""DN comparison for scope checks (RFC 4514 syntax, caseIgnoreMatch values)."""

import pytest

from gateway.directory.dn import dn_key, is_within

ROOTS = ("ou=people,dc=example,dc=org",)


@pytest.mark.parametrize(
    "spelling",
    [
        "uid=alice,ou=people,dc=example,dc=org",
        "UID=Alice, OU=People , DC=Example,DC=ORG",
        "uid=al\\69ce,ou=people,dc=example,dc=org",
        "uid=alice,ou=people,  dc=example, dc=org",
    ],
)
def test_spellings_of_one_dn_meet(spelling: str) -> None:
    assert dn_key(spelling) == dn_key("uid=alice,ou=people,dc=example,dc=org")


def test_multi_valued_rdns_are_unordered() -> None:
    assert dn_key("cn=a+sn=b,dc=org") == dn_key("SN=B+CN=A,dc=org")


def test_different_dns_differ() -> None:
    assert dn_key("uid=alice,ou=people,dc=example,dc=org") != dn_key(
        "uid=alice,ou=people,dc=example,dc=com"
    )
    assert dn_key("cn=a\\,b,dc=org") != dn_key("cn=a,cn=b,dc=org")


@pytest.mark.parametrize("text", ["", "not a dn", "uid=alice)(|(uid=*", "cn=\\ff,dc=org"])
def test_what_is_not_a_dn_has_no_key(text: str) -> None:
    assert dn_key(text) is None


@pytest.mark.parametrize(
    ("dn", "inside"),
    [
        ("uid=alice,ou=people,dc=example,dc=org", True),
        ("uid=x,ou=sub,OU=People,dc=example,dc=org", True),
        ("ou=people,dc=example,dc=org", True),
        ("uid=erin,ou=contractors,dc=example,dc=org", False),
        ("dc=example,dc=org", False),
        ("uid=alice,ou=people,dc=example,dc=org,dc=evil", False),
        ("uid=alice,ou=xpeople,dc=example,dc=org", False),
        ("not a dn", False),
    ],
)
def test_is_within(dn: str, inside: bool) -> None:
    assert is_within(dn, ROOTS) is inside


def test_is_within_any_of_several_roots() -> None:
    roots = ("ou=a,dc=org", "ou=b,dc=org")
    assert is_within("cn=x,ou=b,dc=org", roots)
    assert not is_within("cn=x,ou=c,dc=org", roots)
